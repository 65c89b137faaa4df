//! [`Faults`]: what a real API does to its clients, turned on by a test, and
//! the count of every request a server answered.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::time::Instant;

/// How many requests a server answered, and how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every request, refused ones included.
    pub requests: u64,
    /// Requests refused with 429 by the rate limit.
    pub rate_limited: u64,
    /// Requests answered with a 5xx by [`Faults::fail_next`].
    pub server_errors: u64,
    /// Requests that wrote (create, update, delete endpoints), answered
    /// with a success.
    pub writes: u64,
    /// When the first request counted arrived, and the last.
    pub first: Option<Instant>,
    /// When the last request counted arrived.
    pub last: Option<Instant>,
}

#[derive(Debug, Default)]
struct State_ {
    /// Requests per rolling window.
    limit: Option<(u32, Duration)>,
    /// When the requests let through in the current window arrived.
    window: VecDeque<Instant>,
    latency: Duration,
    /// The next this-many requests answer with `fail_status`.
    fail_next: u32,
    fail_status: u16,
    stats: Stats,
}

/// Faults a server injects, shared by every request it answers (cheap to
/// clone: clones share the faults and the counts).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<State_>>,
}

/// What the fault layer decided for one request.
enum Gate {
    Pass,
    Limited(Duration),
    Fail(u16),
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// At most `requests` per `per`, over a rolling window: a request over
    /// it is answered 429 with `Retry-After` (whole seconds, rounded up)
    /// and does not count towards the window.
    pub fn rate_limit(&self, requests: u32, per: Duration) {
        let mut state = self.lock();
        state.limit = Some((requests, per));
        state.window.clear();
    }

    /// No rate limit.
    pub fn no_rate_limit(&self) {
        let mut state = self.lock();
        state.limit = None;
        state.window.clear();
    }

    /// Every request waits this long before it is answered.
    pub fn latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The next `requests` requests are answered with `status` (a 5xx).
    pub fn fail_next(&self, requests: u32, status: u16) {
        let mut state = self.lock();
        state.fail_next = requests;
        state.fail_status = status;
    }

    /// The counts so far.
    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    /// Sets the counts back to zero.
    pub fn reset_stats(&self) {
        self.lock().stats = Stats::default();
    }

    /// Counts a successful write request (the servers call it).
    pub fn count_write(&self) {
        self.lock().stats.writes += 1;
    }

    fn gate(&self) -> (Gate, Duration) {
        let mut state = self.lock();
        let now = Instant::now();
        state.stats.requests += 1;
        state.stats.first.get_or_insert(now);
        state.stats.last = Some(now);
        let latency = state.latency;
        if state.fail_next > 0 {
            state.fail_next -= 1;
            state.stats.server_errors += 1;
            return (Gate::Fail(state.fail_status), latency);
        }
        let Some((requests, per)) = state.limit else {
            return (Gate::Pass, latency);
        };
        while state
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= per)
        {
            state.window.pop_front();
        }
        if state.window.len() >= requests as usize {
            let oldest = state.window.front().copied().unwrap_or(now);
            let wait = per.saturating_sub(now.duration_since(oldest));
            state.stats.rate_limited += 1;
            return (Gate::Limited(wait), latency);
        }
        state.window.push_back(now);
        (Gate::Pass, latency)
    }
}

/// The middleware every route of a server runs behind: counts the request,
/// waits the latency, and answers a 5xx burst or a 429 in the API's shape
/// instead of the route when the faults say so.
pub async fn layer(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let (gate, latency) = faults.gate();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match gate {
        Gate::Pass => next.run(request).await,
        Gate::Fail(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let body =
                json!({"status": "error", "message": "the server is unavailable, try again"});
            (status, Json(body)).into_response()
        }
        Gate::Limited(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let body = json!({
                "status": "error",
                "category": "RATE_LIMITS",
                "message": "You have reached your secondly limit.",
            });
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert("retry-after", value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_window_rolls() {
        tokio::time::pause();
        let faults = Faults::default();
        faults.rate_limit(2, Duration::from_secs(1));
        assert!(matches!(faults.gate().0, Gate::Pass));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(matches!(faults.gate().0, Gate::Pass));
        assert!(matches!(faults.gate().0, Gate::Limited(w) if w == Duration::from_millis(500)));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(matches!(faults.gate().0, Gate::Pass));
        assert_eq!(faults.stats().rate_limited, 1);
        assert_eq!(faults.stats().requests, 4);
    }
}
