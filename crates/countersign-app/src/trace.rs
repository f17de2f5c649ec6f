//! The trace context of the call being served: an edge (the HTTP API, the MCP gateway) runs
//! its call inside [`scope`] with the `traceparent` the agent sent, and the Gateway records it
//! on the requests the call makes (`Gateway::submit_decided` reads [`current`] in the caller's
//! task, before anything is handed to the store's writer).

use countersign_core::trace::TraceParent;
use std::future::Future;

tokio::task_local! {
    static TRACE: Option<TraceParent>;
}

/// Runs `f` with `trace` as the current call's trace context.
pub async fn scope<F: Future>(trace: Option<TraceParent>, f: F) -> F::Output {
    TRACE.scope(trace, f).await
}

/// The current call's trace context, if it carried a valid one.
pub fn current() -> Option<TraceParent> {
    TRACE.try_with(Clone::clone).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_trace_is_the_calls_own() {
        let t = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(current(), None);
        let seen = scope(t.clone(), async { current() }).await;
        assert_eq!(seen, t);
        assert_eq!(scope(None, async { current() }).await, None);
        assert_eq!(current(), None);
    }
}
