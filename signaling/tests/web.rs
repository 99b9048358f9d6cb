//! The web app's files served by the server (`--web-dir`): at `/` and at invite links, with a
//! strict CSP, only from inside the folder, and not at all without the flag.
mod common;

use common::TestServer;

/// A built web app in miniature, with a secret beside (not inside) it.
fn web_dir() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let web = root.path().join("web");
    std::fs::create_dir_all(web.join("assets")).unwrap();
    std::fs::write(
        web.join("index.html"),
        "<!doctype html><title>Parlor</title>",
    )
    .unwrap();
    std::fs::write(web.join("assets/index-abc123.js"), "console.log(1)").unwrap();
    std::fs::write(web.join("ring.wav"), "RIFF").unwrap();
    std::fs::write(root.path().join("secret.txt"), "do not serve").unwrap();
    root
}

#[tokio::test]
async fn serves_the_web_app_beside_the_api_with_a_strict_policy() {
    let root = web_dir();
    let web = root.path().join("web");
    let server = TestServer::start(&["--web-dir", web.to_str().unwrap()]).await;

    let (status, headers, body) = server.get_with_headers("/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>Parlor</title>"));
    assert!(
        headers["content-type"].starts_with("text/html"),
        "{headers:?}"
    );
    let csp = &headers["content-security-policy"];
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-cache");

    // An invite link opens the app, which reads the code from the address.
    let (status, _, body) = server.get_with_headers("/join/Zq3-code").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>Parlor</title>"));

    // Built assets are named by content: cached for good.
    let (status, headers, body) = server.get_with_headers("/assets/index-abc123.js").await;
    assert_eq!((status, body.as_str()), (200, "console.log(1)"));
    assert!(
        headers["content-type"].contains("javascript"),
        "{headers:?}"
    );
    assert!(
        headers["cache-control"].contains("immutable"),
        "{headers:?}"
    );
    assert!(headers.contains_key("content-security-policy"));
    assert_eq!(server.get("/ring.wav").await.0, 200);

    // Nothing else: no made-up page for a missing file, nothing from outside the folder.
    for path in [
        "/missing.js",
        "/assets/missing.js",
        "/join/",
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
    ] {
        let (status, _, body) = server.get_with_headers(path).await;
        assert!(status == 404 || status == 400, "{path}: {status} {body}");
        assert!(!body.contains("do not serve"), "{path}");
    }

    // The API is still there.
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn without_a_web_dir_only_the_api_is_served() {
    let server = TestServer::start(&[]).await;
    assert_eq!(server.get("/").await.0, 404);
    assert_eq!(server.get("/join/abc").await.0, 404);
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn a_web_dir_without_the_app_is_refused_at_start() {
    let root = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_parlor-server"))
        .args(["--listen", "127.0.0.1:0", "--database"])
        .arg(root.path().join("x.db"))
        .arg("--web-dir")
        .arg(root.path())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("index.html"), "{stderr}");
    assert!(stderr.contains("build:web"), "{stderr}");
}
