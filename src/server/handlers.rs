//! Request routing: the telemetry path (GET, HEAD; OpenMetrics when the Accept header asks
//! for it, else the Prometheus text format), the incident page `/`, the event API
//! `/api/v1/events`, `/-/healthy`, `/-/ready`; 405 with `Allow` for other methods on those
//! paths, 404 elsewhere, and 503 when `--web.max-requests` scrapes, page views and API
//! calls are already in flight; 429 beyond the web config's
//! `rate_limit`, before anything else. With basic auth configured
//! every path needs credentials (401 with `WWW-Authenticate` otherwise); the web config's
//! headers go on every response.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::incident::{events_json, page, parse_query, query_log};
use super::scrape::SharedScrape;
use super::security::WebSecurity;
use crate::events::EventLog;
use crate::metrics::{CONTENT_TYPE as OPENMETRICS, TEXT_CONTENT_TYPE};

/// True when the client's Accept header asks for OpenMetrics (Prometheus does); anything
/// else (curl, older scrapers) gets the Prometheus text format.
fn accepts_openmetrics<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let mut parts = media.split(';').map(str::trim);
            let is_openmetrics = parts.next() == Some("application/openmetrics-text");
            let refused = parts.any(|p| {
                p.split_once('=')
                    .is_some_and(|(key, value)| key.trim() == "q" && value.trim() == "0")
            });
            is_openmetrics && !refused
        })
}

#[derive(Debug)]
pub struct Handler {
    telemetry_path: String,
    scrape: Arc<SharedScrape>,
    /// None: no limit.
    permits: Option<Semaphore>,
    ready: AtomicBool,
    /// The event log the page and the API read; None in tests that need none.
    events: Option<Arc<EventLog>>,
    auth: Option<Arc<super::auth::BasicAuth>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limit: Option<Arc<super::rate_limit::RateLimiter>>,
}

impl Handler {
    pub fn new(
        telemetry_path: String,
        max_requests: usize,
        scrape: Arc<SharedScrape>,
        security: &WebSecurity,
    ) -> Self {
        Self {
            telemetry_path,
            scrape,
            permits: (max_requests > 0).then(|| Semaphore::new(max_requests)),
            ready: AtomicBool::new(false),
            events: None,
            auth: security.auth.clone(),
            headers: security.headers.clone(),
            rate_limit: security.rate_limit.clone(),
        }
    }

    /// Serves the event log on the page and the API.
    pub fn with_event_log(mut self, events: Arc<EventLog>) -> Self {
        self.events = Some(events);
        self
    }

    /// Marks the exporter ready (`/-/ready` answers 200 from then on).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>> {
        let limited = self.rate_limit.as_ref().is_some_and(|limit| !limit.allow());
        let mut response = match &self.auth {
            _ if limited => text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n"),
            Some(auth) if !auth.authorized(request.headers().get(AUTHORIZATION)).await => {
                let mut response = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"oomwatch\", charset=\"UTF-8\""),
                );
                response
            }
            _ => self.route(request).await,
        };
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
    }

    async fn route<B>(&self, request: Request<B>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let known = path == self.telemetry_path
            || matches!(path, "/" | "/api/v1/events" | "/-/healthy" | "/-/ready");
        if !known {
            return text(StatusCode::NOT_FOUND, "404 page not found\n");
        }
        let head = request.method() == Method::HEAD;
        if !head && request.method() != Method::GET {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let response = match path {
            "/" => self.page().await,
            "/api/v1/events" => self.events_api(request.uri().query().unwrap_or("")).await,
            "/-/healthy" => text(StatusCode::OK, "Healthy\n"),
            "/-/ready" if self.ready.load(Ordering::Relaxed) => text(StatusCode::OK, "Ready\n"),
            "/-/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "Not ready\n"),
            _ => self.metrics(accepts_openmetrics(&request)).await,
        };
        if head {
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, Full::new(Bytes::new()));
        }
        response
    }

    /// A slot under `--web.max-requests`; None when every slot is taken (answer `busy`).
    fn permit(&self) -> Option<Option<SemaphorePermit<'_>>> {
        match &self.permits {
            Some(permits) => permits.try_acquire().ok().map(Some),
            None => Some(None),
        }
    }

    async fn page(&self) -> Response<Full<Bytes>> {
        let Some(_permit) = self.permit() else {
            return busy();
        };
        match page(&self.scrape, self.events.clone(), &self.telemetry_path).await {
            Ok(html) => with_type(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from(html),
            ),
            Err(e) => {
                tracing::error!(error = %e, "the incident page failed");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page failed; see the exporter's log\n",
                )
            }
        }
    }

    async fn events_api(&self, query: &str) -> Response<Full<Bytes>> {
        const JSON: &str = "application/json";
        let Some(_permit) = self.permit() else {
            return busy();
        };
        let now = crate::clock::unix_now();
        let filter = match parse_query(query, now) {
            Ok(filter) => filter,
            Err(e) => {
                let body = serde_json::json!({ "error": e.to_string() }).to_string() + "\n";
                return with_type(StatusCode::BAD_REQUEST, JSON, Bytes::from(body));
            }
        };
        match query_log(self.events.clone(), filter).await {
            Ok(selected) => with_type(StatusCode::OK, JSON, Bytes::from(events_json(&selected))),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event log for the API");
                let body = serde_json::json!({ "error": "cannot read the event log; see the exporter's log" });
                with_type(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    JSON,
                    Bytes::from(body.to_string() + "\n"),
                )
            }
        }
    }

    async fn metrics(&self, openmetrics: bool) -> Response<Full<Bytes>> {
        let Some(_permit) = self.permit() else {
            return busy();
        };
        match self.scrape.exposition().await {
            Ok(exposition) if openmetrics => {
                with_type(StatusCode::OK, OPENMETRICS, exposition.openmetrics())
            }
            Ok(exposition) => with_type(StatusCode::OK, TEXT_CONTENT_TYPE, exposition.text()),
            Err(e) => {
                tracing::error!(error = %e, "scrape failed");
                text(StatusCode::INTERNAL_SERVER_ERROR, "scrape failed\n")
            }
        }
    }
}

/// The 503 beyond `--web.max-requests`.
fn busy() -> Response<Full<Bytes>> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many requests in flight (--web.max-requests)\n",
    )
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Scanner;
    use crate::state::StateStore;

    fn handler(max_requests: usize) -> (Handler, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp");
        let (state, _) = StateStore::open(std::sync::Arc::new(
            crate::state_dir::StateDir::unchecked(dir.path()),
        ));
        let scrape = SharedScrape::new(Scanner::new(Vec::new(), Arc::new(state)));
        (
            Handler::new(
                "/metrics".into(),
                max_requests,
                scrape,
                &WebSecurity::default(),
            ),
            dir,
        )
    }

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).expect("request")
    }

    #[tokio::test]
    async fn scrapes_beyond_max_requests_get_503() {
        let (handler, _dir) = handler(1);
        let permits = handler.permits.as_ref().expect("limited");
        let held = permits.try_acquire().expect("one permit");
        let response = handler.handle(get("/metrics")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        let response = handler.handle(get("/metrics")).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn not_ready_until_marked() {
        let (handler, _dir) = handler(0);
        assert!(handler.permits.is_none());
        let response = handler.handle(get("/-/ready")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        handler.set_ready(true);
        let response = handler.handle(get("/-/ready")).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[test]
    fn accept_header_negotiation() {
        let with = |accept: &str| {
            let request = Request::get("/metrics")
                .header(hyper::header::ACCEPT, accept)
                .body(())
                .expect("request");
            accepts_openmetrics(&request)
        };
        assert!(with(
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        ));
        assert!(with(
            "text/plain, application/openmetrics-text; version=0.0.1"
        ));
        assert!(!with("application/openmetrics-text; q=0, text/plain"));
        assert!(!with("text/plain;version=0.0.4"));
        assert!(!with("*/*"));
    }
}
