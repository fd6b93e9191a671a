//! The `nacos-sdk` naming client of one source, kept for the source's life: built on the
//! first session that needs it, then reused, because the SDK has no way to shut a client
//! down, and because it keeps its subscriptions itself (re-subscribing after it
//! reconnects). One listener serves every subscription and forwards "service changed" to
//! whichever session is running.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex as SyncMutex};

use nacos_sdk::api::error::Error as SdkError;
use nacos_sdk::api::naming::{
    NamingChangeEvent, NamingEventListener, NamingService, NamingServiceBuilder, ServiceInstance,
};
use nacos_sdk::api::props::ClientProps;
use tokio::sync::{mpsc, Mutex};

use super::config::NacosConfig;
use super::NacosService;
use crate::ConnectorError;

/// The SDK client and the subscriptions made through it.
pub(super) struct Client {
    config: NacosConfig,
    namespace: String,
    /// Where the SDK keeps its per-service cache files (it always writes them).
    cache_dir: std::path::PathBuf,
    naming: Mutex<Option<NamingService>>,
    subscribed: Mutex<BTreeSet<NacosService>>,
    listener: Arc<Forwarder>,
}

/// The listener of every subscription: sends the changed service to the session.
#[derive(Default)]
struct Forwarder {
    session: SyncMutex<Option<mpsc::UnboundedSender<NacosService>>>,
}

impl NamingEventListener for Forwarder {
    /// Called on the SDK's own runtime. Only the name is passed on: the SDK delivers each
    /// event from a task of its own, so two events can arrive out of order, and the
    /// session reads the service's newest state from the SDK's cache instead.
    fn event(&self, event: Arc<NamingChangeEvent>) {
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = session.as_ref() {
            let _ = session.send(NacosService::from_event(
                &event.group_name,
                &event.service_name,
            ));
        }
    }
}

impl Client {
    pub fn new(config: &NacosConfig, namespace: &str, source_id: &str) -> Client {
        // Private to this process and source, and removed with the client: Switchboard
        // never loads it (`naming_load_cache_at_start` is off), the SDK only writes it.
        // Numbered too: a source's replacement (or a dry run of the same id) gets its own
        // folder, so dropping one client never removes another's.
        static CLIENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cache_dir = std::env::temp_dir()
            .join("switchboard-nacos-cache")
            .join(format!("{}-{source_id}-{n}", std::process::id()));
        Client {
            config: config.clone(),
            namespace: namespace.to_owned(),
            cache_dir,
            naming: Mutex::new(None),
            subscribed: Mutex::new(BTreeSet::new()),
            listener: Arc::new(Forwarder::default()),
        }
    }

    /// The naming client, built (and its connection checked) the first time.
    pub async fn naming(&self) -> Result<NamingService, ConnectorError> {
        let mut slot = self.naming.lock().await;
        if let Some(naming) = slot.as_ref() {
            return Ok(naming.clone());
        }
        let mut props = ClientProps::new()
            // The SDK reaches each server's gRPC port at its HTTP port + 1000.
            .server_addr(self.config.server_addrs())
            .namespace(self.namespace.clone())
            .app_name("switchboard")
            .env_first(false)
            // Switchboard's supervisor guards against wipe-outs; the SDK must not hide
            // a service that really emptied.
            .naming_push_empty_protection(false)
            .naming_load_cache_at_start(false)
            .cache_dir(self.cache_dir.clone());
        let credentials = self
            .config
            .username
            .as_ref()
            .zip(self.config.password.as_ref());
        if let Some((user, password)) = credentials {
            props = props
                .auth_username(user.clone())
                .auth_password(password.expose().to_owned());
        }
        let mut builder = NamingServiceBuilder::new(props);
        if credentials.is_some() {
            builder = builder.enable_auth_plugin_http();
        }
        let built = tokio::time::timeout(self.config.timeout * 2, builder.build()).await;
        let naming = built
            .map_err(|_| ConnectorError::Connection("no answer from Nacos gRPC in time".into()))?
            .map_err(sdk_error)?;
        *slot = Some(naming.clone());
        Ok(naming)
    }

    /// Sends "service changed" to `session` from now on (replacing the last session's).
    pub fn attach(&self, session: mpsc::UnboundedSender<NacosService>) {
        let mut slot = self
            .listener
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *slot = Some(session);
    }

    /// Subscribes to `service` unless already subscribed.
    pub async fn subscribe(
        &self,
        naming: &NamingService,
        service: &NacosService,
    ) -> Result<(), ConnectorError> {
        // Not held across the call: many services are subscribed at once, and the SDK
        // takes a repeated subscription of one service as the same one.
        if self.subscribed.lock().await.contains(service) {
            return Ok(());
        }
        naming
            .subscribe(
                service.name.clone(),
                Some(service.group.clone()),
                Vec::new(),
                self.listener.clone(),
            )
            .await
            .map_err(sdk_error)?;
        self.subscribed.lock().await.insert(service.clone());
        Ok(())
    }

    /// Drops the subscription to `service`, if any.
    pub async fn unsubscribe(&self, naming: &NamingService, service: &NacosService) {
        if !self.subscribed.lock().await.remove(service) {
            return;
        }
        let listener: Arc<dyn NamingEventListener> = self.listener.clone();
        let result = naming
            .unsubscribe(
                service.name.clone(),
                Some(service.group.clone()),
                Vec::new(),
                listener,
            )
            .await;
        if let Err(err) = result {
            tracing::debug!(service = %service.name, error = %err, "Nacos unsubscribe failed");
        }
    }

    /// The services subscribed to.
    pub async fn subscribed(&self) -> BTreeSet<NacosService> {
        self.subscribed.lock().await.clone()
    }

    /// A service's instances: read from the server now, or (`from_cache`) as the SDK
    /// last received them, from its cache, which it fills before telling the listener.
    pub async fn instances(
        naming: &NamingService,
        service: &NacosService,
        from_cache: bool,
    ) -> Result<Vec<ServiceInstance>, ConnectorError> {
        // With `subscribe` true the SDK answers from its cache when it holds the service.
        naming
            .get_all_instances(
                service.name.clone(),
                Some(service.group.clone()),
                Vec::new(),
                from_cache,
            )
            .await
            .map_err(sdk_error)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.cache_dir);
    }
}

/// The SDK's errors as the supervisor's: refused credentials or permissions are auth
/// errors, transport failures connection errors, the rest protocol errors.
pub(super) fn sdk_error(err: SdkError) -> ConnectorError {
    let message = err.to_string();
    match err {
        SdkError::ErrResponse(_, _, 401 | 403, _) => ConnectorError::Auth(message),
        SdkError::ErrResult(ref text)
            if text.contains("error_code=403") || text.contains("error_code=401") =>
        {
            ConnectorError::Auth(message)
        }
        SdkError::TonicGrpcTransport(_)
        | SdkError::TonicGrpcStatus(_)
        | SdkError::GrpcBufferRequest(_)
        | SdkError::NoAvailableServer
        | SdkError::ClientShutdown(_)
        | SdkError::ClientUnhealthy(_) => ConnectorError::Connection(message),
        _ => ConnectorError::Protocol(message),
    }
}
