//! [`SimServer`]: the simulator served on a loopback port, and the Wolkvox source configuration
//! that points at it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{router, SimState};

/// A running simulator.
pub struct SimServer {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// Bind `addr` (use port 0 for a free port) and serve in the background.
    pub async fn start(addr: SocketAddr, state: Arc<SimState>) -> std::io::Result<SimServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(async move { c.cancelled().await })
                .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "simulator server failed");
            }
        });
        Ok(SimServer {
            addr,
            state,
            cancel,
            task,
        })
    }

    /// The Wolkvox `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v2", self.addr)
    }

    /// The Comm100 `base_url`.
    pub fn comm100_base_url(&self) -> String {
        format!("http://{}/comm100/v4", self.addr)
    }

    /// The Vonage `base_url` and `token_url`.
    pub fn vonage_urls(&self) -> (String, String) {
        (
            format!("http://{}/vonage", self.addr),
            format!("http://{}/vonage/Auth/connect/token", self.addr),
        )
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// A Wolkvox source `name` on the simulator at `base_url` (plain HTTP, no feeds of its own, 256 MB
/// responses allowed), its token read from the environment variable `token_env`.
pub fn wolkvox_source(name: &str, base_url: &str, token_env: &str) -> crate::config::WolkvoxConfig {
    crate::config::WolkvoxConfig {
        name: name.into(),
        base_url: base_url.into(),
        token: crate::secret::SecretRef::Env(token_env.into()),
        time_zone: "America/Bogota".into(),
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(60),
        max_response_bytes: 256 << 20,
        allow_insecure_http: true,
        interactions: Default::default(),
        agents: Default::default(),
        reports: vec![],
        daily_call_limit: None,
        agent_state: Default::default(),
    }
}
