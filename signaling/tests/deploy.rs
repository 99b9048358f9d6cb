//! The deployment files in `deploy/` agree with the server they deploy: the example config
//! starts a real server, the systemd unit passes `systemd-analyze verify` and its security
//! review, and every `PARLOR_*` variable the Dockerfile, the compose file and the unit set is
//! one the server reads. (No container engine runs here, so the image itself is not built by
//! this test.)
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use common::*;
use parlor_protocol::{ErrorCode, Request};
use parlor_signaling::config::{Args, Registration};
use yaml_rust2::{Yaml, YamlLoader};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// The environment variables `parlor-server` reads, from its own flag definitions.
fn server_variables() -> BTreeSet<String> {
    Args::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

/// `PARLOR_…` names directly followed by `=`, in order: what a Dockerfile `ENV` or a unit's
/// `Environment=` sets.
fn assigned_variables(text: &str) -> Vec<String> {
    let mut names = vec![];
    let mut rest = text;
    while let Some(at) = rest.find("PARLOR_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if tail[end..].starts_with('=') {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

fn resolve(config: &Path) -> parlor_signaling::config::Settings {
    Args {
        config: Some(config.to_path_buf()),
        ..Args::default()
    }
    .resolve()
    .unwrap_or_else(|e| panic!("{}: {e}", config.display()))
}

#[test]
fn the_example_config_and_each_setting_it_shows_commented_out_are_valid() {
    let settings = resolve(&deploy("parlor.toml"));
    assert_eq!(settings.listen.to_string(), "0.0.0.0:7700");
    assert_eq!(settings.database, Path::new("/var/lib/parlor/server.db"));
    assert_eq!(settings.registration, Registration::Invite);
    assert!(settings.turn_urls.is_empty() && settings.stun_urls.is_empty());

    // The commented-out examples are real keys with values of the right type.
    let text = read("parlor.toml");
    let examples: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| {
            line.split_once(" = ")
                .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        })
        .collect();
    assert!(examples.len() >= 3, "no commented-out settings found");
    let dir = tempfile::tempdir().unwrap();
    let uncommented = dir.path().join("parlor.toml");
    std::fs::write(&uncommented, format!("{text}\n{}\n", examples.join("\n"))).unwrap();
    let settings = resolve(&uncommented);
    assert_eq!(settings.turn_urls.len(), 2);
    assert!(settings.turn_secret.is_some());
    assert_eq!(settings.stun_urls.len(), 1);
}

#[tokio::test]
async fn a_server_started_on_the_example_config_takes_invites_only() {
    // The test's own --listen and --database override the file's, as a flag does.
    let server = TestServer::start(&["--config", deploy("parlor.toml").to_str().unwrap()]).await;
    let mut client = Client::connect(&server).await;
    let refused = client
        .refused(
            Request::Register {
                username: "walk-in".into(),
                display_name: "Walk In".into(),
                password: "a long enough password".into(),
                invite: None,
            },
            ErrorCode::Forbidden,
        )
        .await;
    assert!(refused.message.contains("invite"), "{}", refused.message);
}

#[test]
fn the_systemd_unit_verifies_and_is_confined() {
    // verify checks that ExecStart exists: point it at the binary this test built.
    let unit = read("parlor-server.service").replace(
        "/usr/local/bin/parlor-server",
        env!("CARGO_BIN_EXE_parlor-server"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor-server.service");
    std::fs::write(&path, &unit).unwrap();

    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (apt-get install systemd; scripts/install-deps.sh does)");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    // verify exits 0 for an unknown key and only warns: any line about our file is a defect.
    let ours: Vec<&str> = complaints
        .lines()
        .filter(|line| line.contains("parlor-server.service"))
        .collect();
    assert!(verify.status.success() && ours.is_empty(), "{complaints}");

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .expect("systemd-analyze security");
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|line| {
            line.split_once("Overall exposure level for ")?
                .1
                .split_once(": ")
        })
        .and_then(|(_, level)| level.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in\n{report}"));
    println!("systemd-analyze security: exposure {exposure} (0 = fully confined, 10 = none)");
    // systemd rates below 2 as "OK"; an unconfined service scores 9.6.
    assert!(exposure < 2.0, "exposure {exposure}\n{report}");

    let known = server_variables();
    let set = assigned_variables(&unit);
    assert!(set.contains(&"PARLOR_TLS_KEY".to_owned()), "{set:?}");
    for name in set {
        assert!(
            known.contains(&name),
            "the unit sets {name}, which the server does not read"
        );
    }
}

#[test]
fn the_image_sets_only_variables_the_server_reads_and_keeps_its_data_on_the_volume() {
    let dockerfile = read("Dockerfile");
    let known = server_variables();
    let set = assigned_variables(&dockerfile);
    assert!(set.contains(&"PARLOR_DATABASE".to_owned()), "{set:?}");
    for name in &set {
        assert!(
            known.contains(name),
            "the image sets {name}, which the server does not read"
        );
    }
    assert!(dockerfile.contains("PARLOR_DATABASE=/var/lib/parlor/"));
    assert!(dockerfile.contains("VOLUME /var/lib/parlor"));
    assert!(
        dockerfile.contains("USER parlor"),
        "the server must not run as root"
    );
}

fn string_list(value: &Yaml) -> Vec<String> {
    value
        .as_vec()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_compose_file_shares_one_turn_secret_and_names_every_variable_it_needs() {
    let text = read("compose.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("compose.yaml is YAML");
    let services = &docs[0]["services"];
    let parlor = &services["parlor"];
    let turn = &services["turn"];
    assert!(!parlor.is_badvalue() && !turn.is_badvalue(), "{text}");

    let environment = parlor["environment"].as_hash().expect("parlor.environment");
    let known = server_variables();
    for key in environment.keys() {
        let key = key.as_str().expect("variable name");
        assert!(
            known.contains(key),
            "compose sets {key}, which the server does not read"
        );
    }
    let secret = parlor["environment"]["PARLOR_TURN_SECRET"]
        .as_str()
        .expect("PARLOR_TURN_SECRET");
    let relay = string_list(&turn["command"]);
    assert!(relay.contains(&"--use-auth-secret".to_owned()), "{relay:?}");
    assert!(
        relay.contains(&format!("--static-auth-secret={secret}")),
        "the relay's secret is not the server's {secret}: {relay:?}"
    );
    let volumes = string_list(&parlor["volumes"]);
    assert!(
        volumes.iter().any(|v| v.ends_with(":/var/lib/parlor")),
        "{volumes:?}"
    );

    // Every variable compose insists on (${NAME:?…}) is in the example env file.
    let example = read("parlor.env.example");
    let listed: BTreeSet<&str> = example
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    let mut required = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("${") {
        let tail = &rest[at + 2..];
        let end = tail.find([':', '}']).expect("closed ${…}");
        required.insert(&tail[..end]);
        rest = &tail[end..];
    }
    assert!(required.contains("TURN_SECRET"), "{required:?}");
    for name in required {
        assert!(listed.contains(name), "parlor.env.example lacks {name}");
    }
}
