//! `systole serve`, `systole score` and `systole keys`: host model packages as a web service, call it, and
//! manage its keys (docs/serving.md).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use driver::device::DeviceSpec;
use runtime::pipeline::top_k;
use server::keys::{Keys, Which};
use server::{BatchConfig, ModelConfig, RequestLimits, Server, ServerConfig};

/// Arguments of `systole serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A model package to serve (repeatable; written by `systole package`). Requests that name no model get
    /// the first; otherwise a model is named by its package name.
    #[arg(long = "package", value_name = "FILE", required = true)]
    pub packages: Vec<PathBuf>,
    /// The device the models run on: emu:CONFIG, vfio:PCI-ADDRESS, verilator:MODEL or rust-hdl:CONFIG (as
    /// `systole classify --device`). Default: the emulated engine of each package's own configuration. Each
    /// package opens the device for itself and gets its own engine worker.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<DeviceSpec>,
    /// The address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port for gRPC (TF-Serving Predict, KServe v2) and REST (KServe v2, health, /metrics); 0 picks a
    /// free one.
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// The TLS certificate chain, PEM (the server's certificate first). With --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key, PEM. With --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The keys file: the primary key on the first line, the secondary on the second (`systole keys
    /// generate`). Re-read on change and on SIGHUP, so keys rotate without a restart. Without it anyone can
    /// call the service.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Most images an engine worker runs in one batch (1: no batching).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_batch: u32,
    /// Longest an engine worker waits for more requests after the first of a batch, in microseconds.
    #[arg(long, value_name = "US", default_value_t = 2000)]
    pub max_delay_us: u64,
    /// Most requests waiting per model; beyond it requests get RESOURCE_EXHAUSTED (HTTP 429).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue: u32,
    /// Largest request message (gRPC) or body (REST), in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=2047))]
    pub max_message_mib: u32,
    /// Most images in one request.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_images: u32,
    /// Largest image width or height in pixels (checked in the file's header before decoding).
    #[arg(long, value_name = "PIXELS", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_image_side: u32,
    /// On SIGTERM or Ctrl-C, how long to let requests in flight finish, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub drain_secs: u64,
}

/// Arguments of `systole score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Photos to score (JPEG, PNG, …), one request each, as the Azure Python client sends them.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// The server's host name (with TLS: the name its certificate is for).
    #[arg(long, default_value = "localhost")]
    pub host: String,
    /// The server's port.
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// Use TLS and trust this PEM certificate (the server's self-signed one, or its CA).
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// The primary or secondary key (default: $SYSTOLE_KEY, if set).
    #[arg(long, env = "SYSTOLE_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Class names, one per line or a JSON list, to print beside the class numbers.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// How many classes to print.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: u16,
}

/// Commands of `systole keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a keys file with a fresh random primary and secondary key (refuses to overwrite one).
    Generate {
        /// The keys file to write.
        file: PathBuf,
    },
    /// Replace one key of a keys file with a fresh random key; a running server takes it within a second.
    Regenerate {
        /// Which key to replace.
        #[arg(long, value_enum)]
        which: WhichArg,
        /// The keys file.
        file: PathBuf,
    },
}

/// Which key `systole keys regenerate` replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WhichArg {
    /// The first line.
    Primary,
    /// The second line.
    Secondary,
}

/// A multi-threaded tokio runtime for the commands.
fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Logs (tracing) to standard error; `RUST_LOG` filters them (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

/// Runs `systole serve` until SIGTERM or Ctrl-C.
pub fn serve(args: &ServeArgs) -> Result<()> {
    init_logging();
    let mut models = Vec::new();
    for path in &args.packages {
        let service = runtime::service::load(path).with_context(|| format!("loading package {}", path.display()))?;
        let device = args.device.clone().unwrap_or(DeviceSpec::Emu(*service.compiled.config()));
        let opener_device = device.clone();
        let open: server::DeviceOpener = Arc::new(move || {
            crate::device::open_with(&opener_device, &sim::SimOptions::default()).map_err(|e| format!("{e:#}"))
        });
        println!(
            "model '{}' ({} classes, {} engine) on {device}",
            service.pipeline.name,
            service.pipeline.labels.len(),
            service.compiled.config().spec().unwrap_or_else(|| service.compiled.config().to_string())
        );
        models.push(ModelConfig { name: None, service, open });
    }
    let mut config = ServerConfig::new(SocketAddr::new(args.host, args.port), models);
    config.tls = args.tls_cert.clone().zip(args.tls_key.clone());
    config.keys = args.keys.clone();
    config.batching = BatchConfig {
        max_batch: args.max_batch as usize,
        max_delay: Duration::from_micros(args.max_delay_us),
        queue_capacity: args.queue as usize,
    };
    config.limits = RequestLimits {
        max_message_bytes: (args.max_message_mib as usize) << 20,
        max_images: args.max_images as usize,
        max_image_side: args.max_image_side,
    };
    config.drain = Duration::from_secs(args.drain_secs);
    tokio_runtime()?.block_on(async move {
        let server = Server::start(config).await.map_err(|e| anyhow!(e))?;
        let addr = server.local_addr();
        if !server.tls() {
            tracing::warn!(
                "TLS is OFF: requests, keys and images cross the network in plain text; give --tls-cert and --tls-key"
            );
        }
        if !server.authenticated() {
            tracing::warn!("no keys file: ANYONE who can reach {addr} can call the service; give --keys FILE");
        }
        let scheme = if server.tls() { "https" } else { "http" };
        let stop = shutdown_signal();
        println!("listening on {addr} ({scheme}; gRPC and REST; models: {})", server.model_names().join(", "));
        stop.await;
        tracing::info!("shutting down: draining requests in flight");
        server.shutdown().await;
        println!("stopped");
        Ok(())
    })
}

/// Registers for SIGTERM (Kubernetes stopping the pod) at once and returns what completes on it or on
/// Ctrl-C. It is called before the server says it is listening, so a SIGTERM sent as soon as that line appears
/// stops the server cleanly instead of killing it (the handler is in place before anyone can know the port).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term => {} }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `systole score`: one Predict request per image, the top classes of each.
pub fn score(args: &ScoreArgs) -> Result<()> {
    let labels = args.labels.as_deref().map(crate::classify::read_labels).transpose()?;
    let target = server::client::Target {
        host: args.host.clone(),
        port: args.port,
        tls_ca: args.tls_ca.clone(),
        key: args.key.clone(),
    };
    tokio_runtime()?.block_on(async move {
        let mut client = server::client::Client::connect(&target).await.map_err(|e| anyhow!(e))?;
        let mut failures = 0;
        for path in &args.images {
            let result = async {
                let image = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let t0 = std::time::Instant::now();
                let prediction = client
                    .predict(vec![image])
                    .await
                    .map_err(|s| anyhow!("the server answered {:?}: {}", s.code(), s.message()))?;
                let took = t0.elapsed();
                let p: Vec<f64> = prediction.probabilities[0].iter().map(|&v| v as f64).collect();
                println!("{} ({:.1} ms)", path.display(), took.as_secs_f64() * 1e3);
                for (rank, class) in top_k(&p, args.top as usize).into_iter().enumerate() {
                    let name = labels.as_ref().and_then(|l| l.get(class)).map_or(String::new(), |n| format!(" {n}"));
                    println!("  {}. class {class}{name} {:.3}", rank + 1, p[class]);
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(e) = result {
                eprintln!("error: {}: {e:#}", path.display());
                failures += 1;
            }
        }
        if failures > 0 {
            bail!("{failures} of {} images could not be scored", args.images.len());
        }
        Ok(())
    })
}

/// Runs `systole keys`.
pub fn keys(command: &KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Generate { file } => {
            if file.exists() {
                bail!("{} exists: use `systole keys regenerate` to replace one of its keys", file.display());
            }
            Keys::generate().write(file).map_err(|e| anyhow!(e))?;
            println!("{}: new primary and secondary keys", file.display());
        }
        KeysCommand::Regenerate { which, file } => {
            let keys = Keys::read(file).map_err(|e| anyhow!(e))?;
            let which = match which {
                WhichArg::Primary => Which::Primary,
                WhichArg::Secondary => Which::Secondary,
            };
            keys.regenerate(which).write(file).map_err(|e| anyhow!(e))?;
            println!("{}: new {} key; the other is unchanged", file.display(), format!("{which:?}").to_lowercase());
        }
    }
    Ok(())
}
