//! The web console: a static page and one script (`console/` in the
//! repository), built into the binary and served by `holdfast serve` under
//! `/console/`. It holds no data and no rights of its own: everything it
//! shows comes from the API with the person's own session (a cookie, see
//! `api::access`), so the same roles, scopes and audit apply.
//!
//! Nothing is fetched from elsewhere (air-gapped networks): the Content
//! Security Policy allows this server only, no inline script or style.

use std::path::PathBuf;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

static ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../console/favicon.svg"),
    },
];

/// What the console's pages may load and do: this server only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Where the console's files come from.
#[derive(Debug, Clone, Default)]
pub struct ConsoleFiles {
    /// Read from this directory at every request instead of the built-in
    /// copies (`HOLDFAST_CONSOLE_DIR`, for working on the console).
    pub dir: Option<PathBuf>,
}

/// `/` (to the console), `/console/` and its files.
pub fn router(files: ConsoleFiles) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|State(files): State<ConsoleFiles>| async move {
                asset(&files, "index.html").await
            }),
        )
        .route(
            "/console/{name}",
            get(
                |State(files): State<ConsoleFiles>, Path(name): Path<String>| async move {
                    asset(&files, &name).await
                },
            ),
        )
        .with_state(files)
}

async fn asset(files: &ConsoleFiles, name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let body: Vec<u8> = match &files.dir {
        Some(dir) => match tokio::fs::read(dir.join(asset.name)).await {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, dir = %dir.display(), file = asset.name, "cannot read the console file");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot read the console file; see the server log",
                )
                    .into_response();
            }
        },
        None => asset.body.to_vec(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary; revalidate rather than cache stale ones.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get_path(path: &str) -> Response {
        router(ConsoleFiles::default())
            .oneshot(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn serves_the_built_in_files_with_a_strict_policy() {
        for asset in ASSETS {
            let response = get_path(&format!("/console/{}", asset.name)).await;
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.name);
            assert_eq!(
                response.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(response.headers()[header::CONTENT_TYPE], asset.content_type);
        }
        let index = get_path("/console/").await;
        assert_eq!(index.status(), StatusCode::OK);
        let root = get_path("/").await;
        assert_eq!(root.status(), StatusCode::SEE_OTHER);
        assert_eq!(root.headers()[header::LOCATION], "/console/");
        assert_eq!(
            get_path("/console/../Cargo.toml").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get_path("/console/secrets.txt").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    /// The audit screen offers every action the trail can hold, and no other.
    #[test]
    fn the_audit_filter_lists_every_action() {
        let script = String::from_utf8_lossy(include_bytes!("../console/app.js"));
        let start = script.find("const AUDIT_ACTIONS = [").unwrap();
        let list = &script[start..start + script[start..].find("];").unwrap()];
        let offered: std::collections::BTreeSet<&str> =
            list.split('\'').skip(1).step_by(2).collect();
        let known: std::collections::BTreeSet<&str> = crate::audit::AuditAction::ALL
            .iter()
            .map(|action| action.as_str())
            .collect();
        assert_eq!(offered, known);
    }

    /// The console loads nothing from elsewhere: no absolute URL in any file.
    #[test]
    fn the_files_name_no_other_server() {
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.body);
            for needle in ["http://", "https://", "//cdn", "fonts.googleapis"] {
                for (at, _) in text.match_indices(needle) {
                    let around: String = text[at..].chars().take(40).collect();
                    // XML namespace names are identifiers, never fetched.
                    assert!(
                        around.starts_with("http://www.w3.org/"),
                        "{} refers to another server: {around}",
                        asset.name
                    );
                }
            }
        }
    }
}
