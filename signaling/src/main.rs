//! `parlor-server`: parses settings, binds, prints `listening on ADDR:PORT`, serves until
//! SIGINT or SIGTERM. `parlor-server admin …` and `parlor-server backup FILE` work on the
//! database instead.
use clap::Parser;
use parlor_signaling::admin::Command;
use parlor_signaling::config::Args;
use parlor_signaling::server::Server;

#[derive(Parser)]
#[command(
    name = "parlor-server",
    version,
    about = "Parlor's self-hosted signaling server",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Args,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "parlor_signaling=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        let mut input = std::io::stdin().lock();
        return match parlor_signaling::admin::run(command, &mut input, &mut std::io::stdout()).await
        {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("parlor-server: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let settings = match cli.serve.resolve() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("parlor-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    parlor_signaling::limits::return_large_allocations_to_os();
    if let Some(files) = parlor_signaling::limits::raise_open_files_limit() {
        tracing::debug!("open files limit: {files}");
    }
    let scheme = if settings.tls.is_some() { "wss" } else { "ws" };
    let database = settings.database.clone();
    let server = match Server::bind(settings).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("parlor-server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    // Scripts and tests wait for this exact line; it carries the real port when 0 was asked for.
    println!("listening on {addr}");
    tracing::info!(
        "serving {scheme}://{addr}/ws with database {}",
        database.display()
    );
    if scheme == "ws" && !addr.ip().is_loopback() {
        // Passwords and tokens would cross the network in the clear unless a proxy adds TLS.
        tracing::warn!(
            "serving without TLS on a non-loopback address: give --tls-cert and --tls-key, \
             or listen on 127.0.0.1 behind a reverse proxy that terminates TLS"
        );
    }
    server.run(shutdown_signal()).await;
    std::process::ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
