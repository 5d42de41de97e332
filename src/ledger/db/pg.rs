//! PostgreSQL under [`super::Conn`]: a tokio-postgres client whose connection is driven on a
//! thread of its own, called synchronously from any thread (the ledger's callers are blocking
//! code, some of it on the runtime's workers, where a nested runtime would panic).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc;

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::{Error, Param, Result, Value};

/// Where a PostgreSQL ledger is: the URL or key-value string as given, with what libpq would
/// also have taken from the environment (`PGPASSWORD`, `PGPASSFILE`), resolved by the caller.
#[derive(Clone, Debug)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    /// The CA that signs the server's certificate, beside the system's (`sslrootcert`,
    /// `PGSSLROOTCERT`), for `sslmode=require`.
    pub ca: Option<std::path::PathBuf>,
    /// The URL with any password removed: how errors and `jobctl status` name the ledger.
    pub shown: String,
}

/// A connection that reconnects: a call made while no transaction is open, after the server
/// went away (a restart, a failover, a network cut), connects again first; inside a
/// transaction it fails, since what the transaction wrote is gone with the old connection.
pub struct PgConn {
    target: Box<PgTarget>,
    /// Statements run after every connect (the session's settings).
    setup: String,
    client: RefCell<tokio_postgres::Client>,
    statements: RefCell<HashMap<String, Prepared>>,
    in_tx: std::cell::Cell<bool>,
    /// After a failed reconnect, no new attempt before this instant: a server out of reach
    /// costs one attempt per [`RECONNECT_PAUSE`], however often the callers ask.
    next_try: std::cell::Cell<Option<std::time::Instant>>,
}

/// The pause between two reconnects that failed.
const RECONNECT_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// A statement prepared on the server, with the SQLite number of each of its parameters.
#[derive(Clone)]
pub struct Prepared {
    statement: tokio_postgres::Statement,
    params: std::sync::Arc<[usize]>,
}

impl Prepared {
    fn binds<'a>(&self, params: &'a [&'a dyn Param]) -> Vec<Bind<'a>> {
        self.params
            .iter()
            .map(|&n| Bind(params.get(n - 1).map_or(Value::Null, |p| p.value())))
            .collect()
    }
}

/// A connection's driving future, whatever its stream.
type Driver = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>> + Send>,
>;

/// The TLS connector for `target`: rustls, trusting the system's roots and the target's CA,
/// verifying the server's name, when `sslmode=require`; none otherwise (`prefer`, the
/// default, and `disable` connect in the clear).
pub(super) fn connector(
    target: &PgTarget,
) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>> {
    if target.config.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
        return Ok(None);
    }
    let config =
        crate::tls::client_config(target.ca.as_deref()).map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(
        (*config).clone(),
    )))
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

impl PgConn {
    pub fn connect(target: &PgTarget, setup: String) -> Result<PgConn> {
        let client = Self::client_for(target)?;
        block(client.batch_execute(&setup))?;
        Ok(PgConn {
            target: Box::new(target.clone()),
            setup,
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            in_tx: std::cell::Cell::new(false),
            next_try: std::cell::Cell::new(None),
        })
    }

    /// The client, connected again first if the server closed the connection while no
    /// transaction was open.
    fn client(&self) -> Result<std::cell::Ref<'_, tokio_postgres::Client>> {
        if self.client.borrow().is_closed() {
            if self.in_tx.get()
                || self
                    .next_try
                    .get()
                    .is_some_and(|at| std::time::Instant::now() < at)
            {
                return Err(Error::Closed);
            }
            let client = match Self::client_for(&self.target) {
                Ok(client) => client,
                Err(e) => {
                    self.next_try
                        .set(Some(std::time::Instant::now() + RECONNECT_PAUSE));
                    return Err(e);
                }
            };
            self.next_try.set(None);
            block(client.batch_execute(&self.setup))?;
            self.statements.borrow_mut().clear();
            *self.client.borrow_mut() = client;
            tracing::info!(ledger = %self.target.shown, "connected to the ledger again");
        }
        Ok(self.client.borrow())
    }

    fn client_for(target: &PgTarget) -> Result<tokio_postgres::Client> {
        let config = target.config.clone();
        let tls = connector(target)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("jobs-pg".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(_) => return,
                };
                runtime.block_on(async move {
                    let connected = match tls {
                        None => config
                            .connect(tokio_postgres::NoTls)
                            .await
                            .map(|(client, c)| (client, Box::pin(c) as Driver)),
                        Some(tls) => config
                            .connect(tls)
                            .await
                            .map(|(client, c)| (client, Box::pin(c) as Driver)),
                    };
                    match connected {
                        Ok((client, connection)) => {
                            if tx.send(Ok(client)).is_ok() {
                                let _ = connection.await;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|_| Error::Closed)?;
        Ok(rx.recv().map_err(|_| Error::Closed)??)
    }

    /// Runs statements without parameters. `BEGIN…` opens a transaction (no reconnect until
    /// it ends), `COMMIT` and `ROLLBACK` end it, whatever their outcome.
    pub fn batch(&self, sql: &str) -> Result<()> {
        let ends = sql == "COMMIT" || sql == "ROLLBACK";
        if ends && self.client.borrow().is_closed() {
            self.in_tx.set(false);
            return Err(Error::Closed);
        }
        let done = block(self.client()?.batch_execute(sql));
        if ends {
            self.in_tx.set(false);
        } else if sql.starts_with("BEGIN") {
            // A BEGIN that failed part-way (the lock's wait timed out) left a transaction
            // open: `Conn::transaction` ends it.
            self.in_tx.set(true);
        }
        Ok(done?)
    }

    pub fn prepare(&self, sql: &str) -> Result<Prepared> {
        // Connected first: a reconnect empties the cache of the old connection's statements.
        let client = self.client()?;
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let (text, params) = super::dollar_placeholders(sql);
        let statement = block(client.prepare(&text))?;
        let prepared = Prepared {
            statement,
            params: params.into(),
        };
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), prepared.clone());
        Ok(prepared)
    }

    pub fn execute(&self, s: &Prepared, params: &[&dyn Param]) -> Result<usize> {
        let binds = s.binds(params);
        let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as _).collect();
        let n = block(self.client.borrow().execute(&s.statement, &refs))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub fn query(&self, s: &Prepared, params: &[&dyn Param]) -> Result<Vec<tokio_postgres::Row>> {
        let binds = s.binds(params);
        let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as _).collect();
        Ok(block(self.client.borrow().query(&s.statement, &refs))?)
    }

    pub fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }
}

/// A value bound as the type PostgreSQL inferred for its placeholder.
#[derive(Debug)]
struct Bind<'a>(Value<'a>);

// SAFETY of Sync: Value holds only shared references and plain numbers.
impl ToSql for Bind<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let wrong = || -> Box<dyn std::error::Error + Sync + Send> {
            format!("cannot bind {:?} as {ty}", self.0).into()
        };
        match (&self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Int(i), &Type::TEXT | &Type::VARCHAR) => i.to_string().to_sql(ty, out),
            (Value::Real(r), &Type::FLOAT8) => r.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (Value::Real(r), &Type::FLOAT4) => (*r as f32).to_sql(ty, out),
            (Value::Real(r), &Type::TEXT | &Type::VARCHAR) => r.to_string().to_sql(ty, out),
            (Value::Text(t), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => {
                t.to_sql(ty, out)
            }
            (Value::Text(t), &Type::UNKNOWN) => {
                out.extend_from_slice(t.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(t), &Type::JSON) => {
                out.extend_from_slice(t.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(t), &Type::JSONB) => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(t.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(t), &Type::INT8) => t.parse::<i64>().map_err(|_| wrong())?.to_sql(ty, out),
            (Value::Blob(b), &Type::BYTEA) => b.to_sql(ty, out),
            (Value::Text(t), &Type::BYTEA) => t.as_bytes().to_sql(ty, out),
            _ => Err(wrong()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Column `idx` of a PostgreSQL row as a [`Value`], borrowed from the row.
pub(super) fn get<'r>(row: &'r tokio_postgres::Row, idx: usize) -> Result<Value<'r>> {
    row.try_get::<_, Read<'r>>(idx)
        .map(|r| r.0)
        .map_err(|e| Error::Column {
            idx,
            source: Box::new(e),
        })
}

struct Read<'a>(Value<'a>);

impl<'a> FromSql<'a> for Read<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Read<'a>, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Read(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::OID => Value::Int(i64::from(u32::from_sql(ty, raw)?)),
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
                Value::Text(std::str::from_utf8(raw)?)
            }
            Type::JSONB => match raw.split_first() {
                Some((1, rest)) => Value::Text(std::str::from_utf8(rest)?),
                _ => return Err("unsupported jsonb version".into()),
            },
            Type::BYTEA => Value::Blob(raw),
            _ => return Err(format!("cannot read a column of type {ty}").into()),
        }))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Read<'a>, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Read(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A connection of its own that `LISTEN`s on a channel, for as long as it is kept.
pub struct Listener {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Listens on `channel`, calling `heard` with each notification's payload, and with `None`
/// after every connect (what was sent while it was away is lost, so the caller looks at
/// everything again). A lost connection is retried, 1 s doubling to 30 s, until the
/// [`Listener`] is dropped.
pub fn listen(
    target: &PgTarget,
    channel: &'static str,
    heard: impl Fn(Option<&str>) + Send + 'static,
) -> std::io::Result<Listener> {
    use std::sync::atomic::Ordering;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let config = target.config.clone();
    let tls = connector(target).map_err(|e| std::io::Error::other(e.to_string()))?;
    let stopping = stop.clone();
    std::thread::Builder::new()
        .name("jobs-pg-listen".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let mut backoff = std::time::Duration::from_secs(1);
                while !stopping.load(Ordering::SeqCst) {
                    let listened = match &tls {
                        None => {
                            listen_once(&config, tokio_postgres::NoTls, channel, &heard, &stopping)
                                .await
                        }
                        Some(tls) => {
                            listen_once(&config, tls.clone(), channel, &heard, &stopping).await
                        }
                    };
                    if listened {
                        backoff = std::time::Duration::from_secs(1);
                    }
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
                }
            });
        })?;
    Ok(Listener { stop })
}

/// One connection's life: `true` when it got as far as listening.
async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    channel: &str,
    heard: &(impl Fn(Option<&str>) + Send),
    stopping: &std::sync::atomic::AtomicBool,
) -> bool
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    use futures_util::StreamExt;
    let Ok((client, mut connection)) = config.connect(tls).await else {
        return false;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    if client
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .is_err()
    {
        driver.abort();
        return false;
    }
    heard(None);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(p) => heard(Some(&p)),
                None => break,
            },
            _ = tick.tick() => {
                if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
            }
        }
    }
    driver.abort();
    true
}
