//! The web app's files, served beside `/ws` when the server is given a `--web-dir`: the same
//! origin as the socket, so the page needs no other address and its CSP can say `'self'`.
use std::path::Path;

use axum::http::{header, HeaderValue};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// What the page may load: its own scripts and styles only (no inline script, no eval), media
/// from the camera and from peers, and connections back to this server only. No framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
     connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Routes for the web app in `dir`: its files, and `index.html` at `/` and at `/join/{code}`
/// (an invite link opens the app, which reads the code from the address). A path that is not a
/// file in `dir` is 404; `..` cannot leave it.
pub fn routes<S: Clone + Send + Sync + 'static>(dir: &Path) -> Router<S> {
    let index = ServeFile::new(dir.join("index.html"));
    // Vite names built assets by their content: they never change under the same name.
    let assets = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ))
        .service(ServeDir::new(dir.join("assets")));
    Router::new()
        .route_service("/", index.clone())
        .route_service("/index.html", index.clone())
        .route_service("/join/{code}", index)
        .nest_service("/assets", assets)
        .fallback_service(ServeDir::new(dir).append_index_html_on_directories(false))
        .layer(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                // The page and everything not hashed is checked again on each load, so an
                // upgraded server serves its own app.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                )),
        )
}
