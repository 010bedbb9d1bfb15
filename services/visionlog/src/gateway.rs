//! Wiring the HTTP gateway to the opened backends.

use crate::runtime::Runtime;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use visionlog_gateway::{Gateway, GatewayConfig, Outcomes, Server};

/// The gateway's settings: the defaults, with `VISIONLOG_LEASE_S` (operator lease, default
/// 120) and `VISIONLOG_MAX_BODY_BYTES` (default 1 MiB) from the environment.
pub(crate) fn config() -> GatewayConfig {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let mut c = GatewayConfig::default();
    if let Some(s) = env("VISIONLOG_LEASE_S") {
        c.lease = Duration::from_secs(s.max(1));
    }
    if let Some(n) = env("VISIONLOG_MAX_BODY_BYTES") {
        c.max_body_bytes = n as usize;
    }
    c
}

/// The gateway over `rt`'s backends.
pub(crate) fn gateway(rt: &Runtime, stop: &Arc<AtomicBool>) -> anyhow::Result<Arc<Gateway>> {
    let outcomes = Outcomes::start(rt.log.clone(), rt.codec.clone(), rt.topics.clone(), stop.clone())?;
    Ok(Arc::new(Gateway {
        log: rt.log.clone(),
        codec: rt.codec.clone(),
        topics: rt.topics.clone(),
        bus: rt.bus.clone(),
        store: rt.store.clone(),
        objects: rt.objects.clone(),
        registry: rt.registry.clone(),
        artifacts: Arc::new(visionlog_inference::TorchImport { objects: rt.objects.clone() }),
        tenants: rt.tenants.clone(),
        guard: rt.guard.clone(),
        config: config(),
        outcomes,
        stop: stop.clone(),
    }))
}

/// Starts the gateway on `addr`; it stops with `stop`.
pub(crate) fn start(rt: &Runtime, addr: std::net::SocketAddr, stop: &Arc<AtomicBool>) -> anyhow::Result<Server> {
    Ok(Server::start(gateway(rt, stop)?, addr)?)
}
