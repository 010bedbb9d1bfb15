//! Wiring the HTTP gateway to the opened backends.

use crate::runtime::Runtime;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use visionlog_gateway::{Gateway, Outcomes, Server};

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
        config: rt.settings.gateway(),
        outcomes,
        stop: stop.clone(),
    }))
}

/// Starts the gateway on `addr`; it stops with `stop`.
pub(crate) fn start(rt: &Runtime, addr: std::net::SocketAddr, stop: &Arc<AtomicBool>) -> anyhow::Result<Server> {
    Ok(Server::start(gateway(rt, stop)?, addr)?)
}
