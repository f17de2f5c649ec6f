//! Starting the gateway: open the store, load the policy, create first API keys, bind, and run
//! the background duties (expiry sweeper, policy reload on change or SIGHUP) until shutdown.

use crate::config::Config;
use countersign_app::auth::{self, Authenticator};
use countersign_app::directory::Directory;
use countersign_app::gateway::{Clock, Gateway, SystemClock};
use countersign_app::metrics::StateLabel;
use countersign_app::policy_source::PolicySource;
use countersign_core::{Event, PrincipalId};
use countersign_http::ApiState;
use countersign_store::{PgStore, SqliteStore, Store};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Policy(#[from] countersign_policy::PolicyError),
    #[error("database {path}: {source}")]
    Store {
        path: String,
        source: countersign_store::StoreError,
    },
    #[error("{0}")]
    AuditKey(#[from] countersign_app::audit::KeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    /// The audit key's verifier (what `/v1/audit/key` serves).
    pub audit_key: String,
    /// Keys created on first start (principal, key): shown once, never stored in clear.
    pub bootstrap_keys: Vec<(PrincipalId, String)>,
    mcp: Option<Arc<countersign_mcp::Mcp>>,
    /// Refused channel callbacks not yet written, and the task that writes them.
    refused_callbacks: Arc<countersign_channels::refusals::RefusedCallbacks>,
    refusals_writer: Option<JoinHandle<()>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    duties: Vec<JoinHandle<()>>,
    /// The OTLP exporter, when configured: dropped with the gateway, it sends what is left.
    _spans: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Running {
    /// Serves until the process is asked to stop (Ctrl-C or SIGTERM), then shuts down cleanly.
    pub async fn until_signalled(mut self) -> std::io::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        self.stop().await
    }

    pub async fn stop(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for d in &self.duties {
            d.abort();
        }
        let served = (&mut self.server).await.unwrap_or(Ok(()));
        // No callback arrives any more: write the refusals still only counted.
        self.refused_callbacks.stop();
        if let Some(writer) = self.refusals_writer.take() {
            let _ = writer.await;
        }
        if let Some(mcp) = &self.mcp {
            mcp.shutdown().await;
        }
        served
    }
}

/// Opens the configured database: a `postgres://` (or `postgresql://`) URL is PostgreSQL,
/// anything else a SQLite file (created and migrated if new).
pub async fn open_store(database: &str) -> Result<Arc<dyn Store>, StartError> {
    let failed = |source| StartError::Store {
        path: crate::config::database_display(database),
        source,
    };
    if crate::config::is_postgres_url(database) {
        let store = PgStore::connect(database).await.map_err(failed)?;
        return Ok(Arc::new(store));
    }
    let store = SqliteStore::open(Path::new(database))
        .await
        .map_err(failed)?;
    Ok(Arc::new(store))
}

pub async fn start(config: Config) -> Result<Running, StartError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(
    config: Config,
    clock: Arc<dyn Clock>,
) -> Result<Running, StartError> {
    let invalid = |message| crate::config::ConfigError::Invalid {
        path: "config".into(),
        message,
    };
    let principals = config.principals().map_err(invalid)?;
    let evaluators = config.evaluators().map_err(invalid)?;
    let policy = Arc::new(PolicySource::load(config.policy.as_deref())?);
    // Secrets are resolved here, once; an executor that cannot be built stops the start.
    let executors = countersign_exec::Executors::build(
        &config.executors,
        countersign_exec::Resolver::from_env(),
    )
    .map_err(|message| crate::config::ConfigError::Invalid {
        path: "config".into(),
        message: format!("`executors`: {message}"),
    })?;
    let (spans, telemetry) = match crate::telemetry::start(&config.telemetry).map_err(invalid)? {
        Some((provider, telemetry)) => (Some(provider), telemetry),
        None => (None, countersign_app::telemetry::Telemetry::off()),
    };
    let store = open_store(&config.database).await?;
    let directory = Arc::new(Directory::with_evaluators(principals, evaluators));
    let store_err = |source| StartError::Store {
        path: crate::config::database_display(&config.database),
        source,
    };

    // First start: one key per configured principal, printed once by the caller.
    let mut bootstrap_keys = vec![];
    if store.count_keys().await.map_err(store_err)? == 0 {
        let mut ids: Vec<&PrincipalId> = directory.all().map(|p| &p.id).collect();
        ids.sort();
        for id in ids {
            let key = auth::new_key();
            store
                .create_key(&auth::key_hash(&key), id, clock.now())
                .await
                .map_err(store_err)?;
            bootstrap_keys.push((id.clone(), key));
        }
    }
    let hash = policy.current().hash().to_string();
    store
        .append_event(
            "system",
            Event::PolicyLoaded { hash: hash.clone() },
            Some(&hash),
            clock.now(),
        )
        .await
        .map_err(store_err)?;

    let key_path = config.audit.key_path(&config.database);
    let key_name = config
        .audit
        .origin
        .clone()
        .unwrap_or_else(|| countersign_app::audit::default_name(&config.public_url()));
    let signer = countersign_app::audit::load_or_create_key(&key_path, &key_name)?;
    let audit = Arc::new(countersign_app::audit::Audit::new(
        store.clone(),
        signer.clone(),
        config.audit.origin.clone(),
        config.audit.checkpoint_every,
        config.audit.checkpoint_interval,
    ));
    let gateway = Arc::new(
        Gateway::new(
            store.clone(),
            policy.clone(),
            directory.clone(),
            clock,
            config.public_url(),
            countersign_app::at_rest::Sealer::from_secret(signer.to_private_string().as_bytes()),
        )
        .with_masker(countersign_app::mask::Masker::from_secret(
            signer.to_private_string().as_bytes(),
        ))
        .with_limits(config.limits)
        .with_evaluator(countersign_app::evaluator::Evaluator::new(
            &config.policy_evaluation,
        ))
        .with_executors(Arc::new(executors))
        .with_telemetry(telemetry),
    );
    let _ = gateway.refresh_pending_gauge().await;
    let refused_callbacks = Arc::new(countersign_channels::refusals::RefusedCallbacks::new(
        gateway.clone(),
    ));
    let channels = countersign_channels::Channels {
        slack: config.channels.slack.as_ref().map(|c| {
            Arc::new(countersign_channels::slack::Slack::new(
                c,
                gateway.clone(),
                store.clone(),
                refused_callbacks.clone(),
            ))
        }),
        teams: config.channels.teams.as_ref().map(|c| {
            Arc::new(countersign_channels::teams::Teams::new(
                c,
                gateway.clone(),
                store.clone(),
                refused_callbacks.clone(),
            ))
        }),
    };
    // With executors and no `mcp` section, `/mcp` still offers the executors' tools.
    let mcp_config = config.mcp.clone().or_else(|| {
        (!config.executors.is_empty()).then(countersign_mcp::config::McpConfig::default)
    });
    let mcp = mcp_config.as_ref().map(|c| {
        Arc::new(countersign_mcp::Mcp::new(
            c,
            config.mcp_hold_for(),
            gateway.clone(),
        ))
    });
    if let Some(mcp) = &mcp {
        mcp.warm_up();
    }
    let parts = crate::router::Parts {
        api: ApiState {
            gateway: gateway.clone(),
            auth: Arc::new(Authenticator::new(store.clone(), directory)),
            audit: audit.clone(),
            openapi: Default::default(),
        },
        channels: channels.clone(),
        mcp: mcp.clone(),
        console: Arc::new(countersign_console::Console::new(
            signer.to_private_string().as_bytes(),
            &config.public_url(),
            &config.console,
            store.clone(),
        )),
    };
    let app = crate::router::router(parts, config.max_body_bytes);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen.clone(),
        source,
    })?;
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        countersign_http::server::serve(listener, app, async move {
            let _ = rx.await;
        })
        .await
    });
    let duties = vec![
        tokio::spawn(sweep(gateway.clone())),
        tokio::spawn(watch_policy(gateway.clone())),
        tokio::spawn(
            countersign_channels::Notifier::new(gateway.clone(), store.clone(), channels.clone())
                .run(),
        ),
        tokio::spawn(audit.clone().run_signer(gateway.clock.clone())),
    ];
    let mut duties = duties;
    // Several replicas on one database: wake-ups for what the others commit.
    if let Some(changes) = store.changes() {
        duties.push(tokio::spawn(gateway.clone().follow_other_replicas(changes)));
    }
    if let Some(slack) = &channels.slack {
        duties.push(tokio::spawn(
            countersign_channels::slack::factors::run_slack_announcer(
                Arc::new(slack.api.clone()),
                gateway.factor_news.subscribe(),
            ),
        ));
    }
    for hook in &config.audit.webhooks {
        let webhook = countersign_channels::webhooks::Webhook::new(
            hook.clone(),
            store.clone(),
            signer.clone(),
        );
        duties.push(tokio::spawn(webhook.run()));
    }
    if let (Some(slack), Some(app_token)) = (
        channels.slack.clone(),
        config
            .channels
            .slack
            .as_ref()
            .and_then(|c| c.app_token.clone()),
    ) {
        duties.push(tokio::spawn(countersign_channels::slack::socket::run(
            slack, app_token,
        )));
    }
    let refusals_writer = Some(tokio::spawn(refused_callbacks.clone().run()));
    tracing::info!(%addr, policy = %hash, "countersign gateway listening");
    Ok(Running {
        addr,
        gateway,
        audit_key: audit.verifier().to_string(),
        bootstrap_keys,
        mcp,
        refused_callbacks,
        refusals_writer,
        shutdown: Some(tx),
        server,
        duties,
        _spans: spans,
    })
}

/// Expires due requests every second (reads expire them too, so this only bounds the delay), and
/// closes executions whose gateway died (past their deadline) as `unknown`.
async fn sweep(gateway: Arc<Gateway>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        if let Err(e) = gateway.expire_due().await {
            tracing::warn!(error = %e, "expiry sweep failed; will retry");
        }
        if let Err(e) = gateway.interrupt_due().await {
            tracing::warn!(error = %e, "sweep of interrupted executions failed; will retry");
        }
        n += 1;
        if n.is_multiple_of(30) {
            let _ = gateway.refresh_pending_gauge().await;
        }
    }
}

/// How often the policy file is looked at. Polling one `stat`, not an inotify watch: the policy
/// usually sits in the database's folder, and a watch on that folder woke the gateway for every
/// write to the WAL (≈17 per commit, seen with strace), stealing CPU from requests on a small
/// machine. A `stat` also follows a symlink swapped under the path (Kubernetes ConfigMaps).
const POLICY_POLL: Duration = Duration::from_millis(500);

/// What tells one version of the policy file from another without reading it.
fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Reloads the policy when its file changes or on SIGHUP. An invalid file is refused and the
/// old policy stays in force.
async fn watch_policy(gateway: Arc<Gateway>) {
    let Some(path) = gateway.policy.path().map(Path::to_path_buf) else {
        return;
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
    let poll_tx = tx.clone();
    tokio::spawn(async move {
        // Only a file that has stopped changing is loaded, never a prefix caught mid-write.
        let mut settling = countersign_app::policy_source::Settling::new(file_stamp(&path));
        let mut tick = tokio::time::interval(POLICY_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if settling.observe(file_stamp(&path)) && poll_tx.send(()).await.is_err() {
                return;
            }
        }
    });
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = tx.send(()).await;
            }
        });
    }
    while rx.recv().await.is_some() {
        // Editors write in several steps: let the file settle, then drain the queue.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while rx.try_recv().is_ok() {}
        let outcome = match gateway.policy.reload() {
            Ok(Some(hash)) => {
                tracing::info!(policy = %hash, "policy reloaded");
                if let Err(e) = gateway
                    .record(
                        "system",
                        Event::PolicyLoaded { hash: hash.clone() },
                        Some(&hash),
                    )
                    .await
                {
                    tracing::error!(error = %e, "could not record the policy reload");
                }
                "loaded"
            }
            Ok(None) => "unchanged",
            Err(e) => {
                tracing::error!(error = %e, "policy file invalid; keeping the previous policy");
                "refused"
            }
        };
        gateway
            .metrics
            .policy_reloads
            .get_or_create(&StateLabel {
                state: outcome.into(),
            })
            .inc();
    }
}
