//! The HTTP front door: the gateway's routes and the Operator Manager's on one port, over the
//! opened backends.

use crate::runtime::Runtime;
use axum::Router;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use visionlog_http::{Api, Outcomes, Server};

/// The HTTP state over `rt`'s backends.
pub(crate) fn api(rt: &Runtime, stop: &Arc<AtomicBool>) -> anyhow::Result<Arc<Api>> {
    let outcomes = Outcomes::start(rt.log.clone(), rt.codec.clone(), rt.topics.clone(), stop.clone())?;
    Ok(Arc::new(Api {
        log: rt.log.clone(),
        codec: rt.codec.clone(),
        topics: rt.topics.clone(),
        bus: rt.bus.clone(),
        store: rt.store.clone(),
        objects: rt.objects.clone(),
        registry: rt.registry.clone(),
        artifacts: Arc::new(visionlog_inference::TorchImport {
            objects: rt.objects.clone(),
            isolated: Some(crate::model::isolated_check(
                rt.settings.module_check_memory_mb,
                std::time::Duration::from_millis(rt.settings.module_check_timeout_ms),
            )),
        }),
        tenants: rt.tenants.clone(),
        guard: rt.guard.clone(),
        config: rt.settings.http(),
        outcomes,
        stop: stop.clone(),
        streams: Default::default(),
    }))
}

/// Every route served: the gateway's and the Operator Manager's.
fn routes(api: &Api) -> Router<Arc<Api>> {
    visionlog_gateway::router(api).merge(visionlog_operators::router(api))
}

/// Starts the HTTP front door on `addr`, with the Operator Manager's lease reaper; it stops
/// with `stop`.
pub(crate) fn start(rt: &Runtime, addr: std::net::SocketAddr, stop: &Arc<AtomicBool>) -> anyhow::Result<Server> {
    let api = api(rt, stop)?;
    let routes = routes(&api);
    let reaper = visionlog_operators::reaper(api.clone());
    Ok(Server::start(api, routes, vec![reaper], addr)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_lists_exactly_the_routes_served() {
        let doc: serde_json::Value = serde_json::from_str(visionlog_gateway::OPENAPI).expect("openapi.json is JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| (m.clone(), p.clone())))
            .collect();
        let mut routed: Vec<(String, String)> = visionlog_gateway::ROUTES
            .iter()
            .chain(visionlog_operators::ROUTES)
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
        // every reference resolves
        for r in visionlog_gateway::OPENAPI.split("\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(doc["components"]["schemas"].get(name).is_some(), "{name} is referenced but not defined");
        }
    }
}
