//! A served model: its pipeline, the device it runs on, and the engine worker that runs batches of its
//! inputs.
//!
//! **Under load**, requests are preprocessed on the caller's side (tokio's blocking pool, so decoding runs in
//! parallel with the engine), then queued to the model's engine worker, a thread that runs batches on the
//! device. The queue is bounded: when it is full a request is refused at once with RESOURCE_EXHAUSTED
//! (back-pressure, never unbounded memory). The worker takes the first waiting request, then keeps
//! collecting until the batch holds `max_batch` images or `max_delay` has passed since it took the first
//! (dynamic batching), and runs the batch. Requests whose caller has gone (cancelled, deadline passed) are
//! dropped unrun, and so are those whose deadline would pass before a run as long as the last one ends.
//!
//! **When the engine is idle** (nothing queued, the device free) and the request's deadline, if any, leaves
//! twice the last run's time, a one-image request is preprocessed and run on its own thread (`tokio::task::block_in_place`), with no hand-off to another thread: on the machines
//! measured here each hand-off (waking the other thread) cost 30 to 160 µs, several times the rest of the
//! server's work. Batching cannot help a lone request, so nothing is lost. This needs tokio's multi-threaded
//! runtime; on any other, every request takes the queue.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use driver::{Accelerator, Backend};
use ndarray::{ArrayD, Ix2};
use runtime::compile::CompiledModel;
use runtime::pipeline::{softmax, Pipeline};
use runtime::preprocess::{preprocess_with_limits, DecodeLimits, PreprocessConfig};
use runtime::service::Service;
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::ServeError;

/// Opens the device a model runs on; called once, while the model starts.
pub type DeviceOpener = Arc<dyn Fn() -> Result<Accelerator<Box<dyn Backend>>, String> + Send + Sync>;

/// The driver on the model's device.
type Device = Accelerator<Box<dyn Backend>>;

/// How the engine worker groups requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most images in one batch (1: no batching).
    pub max_batch: usize,
    /// Longest the worker waits for more requests after taking the first of a batch.
    pub max_delay: Duration,
    /// Most requests waiting; beyond it requests are refused with RESOURCE_EXHAUSTED.
    pub queue_capacity: usize,
}

impl Default for BatchConfig {
    /// Batches of up to 8 images gathered for at most 2 ms, 256 requests waiting.
    fn default() -> Self {
        BatchConfig { max_batch: 8, max_delay: Duration::from_millis(2), queue_capacity: 256 }
    }
}

/// One item of a request.
#[derive(Clone, Debug)]
pub enum Input {
    /// An encoded photo (JPEG, PNG, …): preprocessed as the package says.
    Image(bytes::Bytes),
    /// A preprocessed tensor `[3, H, W]` of the network's input size.
    Tensor(ArrayD<f32>),
}

/// The scores of a request.
#[derive(Clone, Debug)]
pub struct Scores {
    /// Softmax probabilities, one row per input.
    pub probabilities: Vec<Vec<f32>>,
    /// Wall time the engine worker spent running this request's inputs (network on the device and host).
    pub engine_time: Duration,
    /// Wall time spent decoding and preprocessing images.
    pub preprocess_time: Duration,
    /// Wall time from entering the queue to the start of its run on the engine: waiting behind other
    /// requests and for its batch to fill.
    pub queue_time: Duration,
}

/// What the engine worker answers for a request.
type WorkerReply = Result<Ran, ServeError>;

/// A request's run on the engine.
struct Ran {
    /// Softmax rows, one per input.
    rows: Vec<Vec<f32>>,
    /// Wall time of the run.
    engine_time: Duration,
    /// Wall time between entering the queue and the run's start.
    queue_time: Duration,
}

/// A request queued for the engine worker.
struct Job {
    inputs: Vec<ArrayD<f32>>,
    deadline: Option<Instant>,
    queued: Instant,
    reply: oneshot::Sender<WorkerReply>,
}

/// A served model, its device and the queue of its engine worker.
pub struct Model {
    name: String,
    pipeline: Pipeline,
    limits: DecodeLimits,
    queue: SyncSender<Job>,
    engine: Arc<Engine>,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Model {
    /// Opens the device with `open`, checks that it is the engine the package's weights are for, and starts the
    /// engine worker.
    pub fn start(
        name: String,
        service: Service,
        open: DeviceOpener,
        batching: BatchConfig,
        limits: DecodeLimits,
        metrics: Arc<Metrics>,
    ) -> Result<Model, String> {
        if batching.max_batch == 0 || batching.queue_capacity == 0 {
            return Err("the batch size and the queue capacity must be at least 1".into());
        }
        let device = open()?;
        if *device.config() != *service.compiled.config() {
            return Err(format!(
                "the package's weights are for a {} engine and the device is a {} engine",
                service.compiled.config(),
                device.config()
            ));
        }
        let engine = Arc::new(Engine {
            name: name.clone(),
            compiled: service.compiled,
            metrics: metrics.clone(),
            device: Mutex::new(device),
            pending: AtomicUsize::new(0),
            last_run_us: AtomicU64::new(0),
        });
        let (queue, jobs) = mpsc::sync_channel::<Job>(batching.queue_capacity);
        let ready = Arc::new(AtomicBool::new(true));
        let worker = Worker { engine: engine.clone(), batching, ready: ready.clone() };
        std::thread::Builder::new()
            .name(format!("engine-{name}"))
            .spawn(move || worker.run(jobs))
            .map_err(|e| format!("starting the engine worker: {e}"))?;
        Ok(Model { name, pipeline: service.pipeline, limits, queue, engine, ready, metrics })
    }

    /// The model's name in requests.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pipeline: preprocessing, network and class names.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The network's input shape, `[1, 3, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        self.pipeline.preprocess.output_shape()
    }

    /// How many classes each output row has.
    pub fn classes(&self) -> usize {
        self.pipeline.labels.len()
    }

    /// Whether the engine worker is running.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Scores `inputs`, at most until `deadline`: at once on this thread when the engine is idle and the
    /// request holds one image, else through the engine worker's queue (see the module documentation).
    pub async fn infer(&self, inputs: Vec<Input>, deadline: Option<Instant>) -> Result<Scores, ServeError> {
        if inputs.is_empty() {
            return Err(ServeError::InvalidArgument("the request has no inputs (an empty tensor)".into()));
        }
        let t0 = Instant::now();
        let may_block = inputs.len() == 1
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let tensors = if may_block {
            let input = inputs.into_iter().next().expect("one input");
            let (shape, config, limits) = (self.input_shape(), &self.pipeline.preprocess, &self.limits);
            vec![tokio::task::block_in_place(|| prepare_one(0, input, shape, config, limits))?]
        } else {
            self.prepare(inputs).await?
        };
        let preprocess_time = t0.elapsed();
        let last_run = Duration::from_micros(self.engine.last_run_us.load(Ordering::Relaxed));
        let time_left = deadline.is_none_or(|d| d.saturating_duration_since(Instant::now()) > 2 * last_run);
        if may_block && time_left && self.engine.pending.load(Ordering::SeqCst) == 0 {
            if let Some(mut device) = self.engine.try_device() {
                let ran = tokio::task::block_in_place(|| self.engine.run_now(&mut device, &tensors, deadline))?;
                return Ok(Scores {
                    probabilities: ran.0,
                    engine_time: ran.1,
                    preprocess_time,
                    queue_time: Duration::ZERO,
                });
            }
        }
        let (reply, result) = oneshot::channel();
        self.engine.pending.fetch_add(1, Ordering::SeqCst);
        match self.queue.try_send(Job { inputs: tensors, deadline, queued: Instant::now(), reply }) {
            Ok(()) => self.metrics.queue_depth.with_label_values(&[&self.name]).inc(),
            Err(e) => {
                self.engine.pending.fetch_sub(1, Ordering::SeqCst);
                return Err(match e {
                    TrySendError::Full(_) => {
                        ServeError::ResourceExhausted(format!("model '{}' has a full queue: retry later", self.name))
                    }
                    TrySendError::Disconnected(_) => {
                        ServeError::Unavailable(format!("model '{}' has no engine worker", self.name))
                    }
                });
            }
        }
        let waited = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), result).await.map_err(|_| deadline_passed())?,
            None => result.await,
        };
        let ran = waited.map_err(|_| ServeError::Internal("the engine worker dropped the request".into()))??;
        Ok(Scores {
            probabilities: ran.rows,
            engine_time: ran.engine_time,
            preprocess_time,
            queue_time: ran.queue_time,
        })
    }

    /// Turns the inputs into network inputs `[1, 3, H, W]` on the blocking pool, one task per input.
    async fn prepare(&self, inputs: Vec<Input>) -> Result<Vec<ArrayD<f32>>, ServeError> {
        let shape = self.input_shape();
        let config = self.pipeline.preprocess.clone();
        let limits = self.limits;
        let tasks: Vec<_> = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| {
                let config = config.clone();
                tokio::task::spawn_blocking(move || prepare_one(i, input, shape, &config, &limits))
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(task.await.map_err(|e| ServeError::Internal(format!("preprocessing task: {e}")))??);
        }
        Ok(out)
    }
}

/// Input `i` as a network input `[1, 3, H, W]` of `shape`: an image decoded and preprocessed, or a tensor's
/// shape and values checked.
fn prepare_one(
    i: usize,
    input: Input,
    shape: [usize; 4],
    config: &PreprocessConfig,
    limits: &DecodeLimits,
) -> Result<ArrayD<f32>, ServeError> {
    match input {
        Input::Image(bytes) => preprocess_with_limits(&bytes, config, limits)
            .map(|a| a.into_dyn())
            .map_err(|e| ServeError::InvalidArgument(format!("image {i}: {e}"))),
        Input::Tensor(t) => {
            if t.shape() != &shape[1..] {
                return Err(ServeError::InvalidArgument(format!(
                    "tensor {i} has shape {:?}; the model takes {:?} per image",
                    t.shape(),
                    &shape[1..]
                )));
            }
            if t.iter().any(|v| !v.is_finite()) {
                return Err(ServeError::InvalidArgument(format!("tensor {i} holds NaN or infinite values")));
            }
            Ok(t.insert_axis(ndarray::Axis(0)))
        }
    }
}

fn deadline_passed() -> ServeError {
    ServeError::DeadlineExceeded("the request's deadline passed before its result was ready".into())
}

/// The device and the compiled model, shared by the engine worker and the requests that find it idle.
struct Engine {
    name: String,
    compiled: CompiledModel,
    metrics: Arc<Metrics>,
    device: Mutex<Device>,
    /// Requests queued and not yet taken by the worker: a request runs on its own thread only when none are.
    pending: AtomicUsize,
    /// Wall time of the last run, in microseconds: a request runs on its own thread only if its deadline
    /// leaves twice that (a run cannot be interrupted; the queue answers at the deadline).
    last_run_us: AtomicU64,
}

impl Engine {
    /// The device, waiting for whoever holds it (a poisoned lock is taken: a run leaves no state behind).
    fn device(&self) -> MutexGuard<'_, Device> {
        self.device.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device if nobody holds it.
    fn try_device(&self) -> Option<MutexGuard<'_, Device>> {
        match self.device.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Runs a lone request now, as a batch of its own, unless its deadline passes first.
    fn run_now(
        &self,
        device: &mut Device,
        inputs: &[ArrayD<f32>],
        deadline: Option<Instant>,
    ) -> Result<(Vec<Vec<f32>>, Duration), ServeError> {
        let expired = || deadline.is_some_and(|d| Instant::now() >= d);
        if expired() {
            return Err(deadline_passed());
        }
        self.metrics.batch_size.observe(inputs.len() as f64);
        let scored = self.score(device, inputs)?;
        if expired() {
            return Err(deadline_passed());
        }
        Ok(scored)
    }

    /// Runs the network on each input and returns the softmax rows and the wall time taken.
    fn score(&self, device: &mut Device, inputs: &[ArrayD<f32>]) -> Result<(Vec<Vec<f32>>, Duration), ServeError> {
        let t0 = Instant::now();
        let mut rows = Vec::with_capacity(inputs.len());
        let mut cycles = 0;
        for x in inputs {
            let run = self.compiled.run(device, std::slice::from_ref(x)).map_err(|e| {
                tracing::error!(model = %self.name, "engine run failed: {e}");
                ServeError::Internal(format!("the engine failed: {e}"))
            })?;
            cycles += run.steps.iter().map(|s| s.stats.counters.cycles).sum::<u64>();
            let logits = run.values[0]
                .view()
                .into_dimensionality::<Ix2>()
                .map_err(|_| ServeError::Internal("the network's output is not [1, classes]".into()))?;
            rows.push(softmax(logits.row(0)).into_iter().map(|p| p as f32).collect());
        }
        let took = t0.elapsed();
        self.last_run_us.store(took.as_micros() as u64, Ordering::Relaxed);
        self.metrics.images.with_label_values(&[&self.name]).inc_by(inputs.len() as u64);
        self.metrics.engine_busy_seconds.with_label_values(&[&self.name]).inc_by(took.as_secs_f64());
        self.metrics.engine_cycles.with_label_values(&[&self.name]).inc_by(cycles);
        Ok((rows, took))
    }
}

/// The engine worker: takes queued requests in batches and runs them on the device.
struct Worker {
    engine: Arc<Engine>,
    batching: BatchConfig,
    ready: Arc<AtomicBool>,
}

impl Worker {
    /// Runs batches until every sender is gone (the server has shut down).
    fn run(self, jobs: mpsc::Receiver<Job>) {
        let engine = &self.engine;
        let depth = engine.metrics.queue_depth.with_label_values(&[&engine.name]);
        while let Ok(first) = jobs.recv() {
            let mut images = first.inputs.len();
            let mut batch = vec![first];
            let until = Instant::now() + self.batching.max_delay;
            while images < self.batching.max_batch {
                match jobs.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(job) => {
                        images += job.inputs.len();
                        batch.push(job);
                    }
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            depth.sub(batch.len() as i64);
            engine.metrics.batch_size.observe(images as f64);
            let mut device = engine.device();
            engine.pending.fetch_sub(batch.len(), Ordering::SeqCst);
            for job in batch {
                if job.reply.is_closed() {
                    continue; // The caller gave up (cancelled, or its deadline passed).
                }
                // A run cannot be interrupted: one that would end after the deadline is not started.
                let last_run = Duration::from_micros(engine.last_run_us.load(Ordering::Relaxed));
                if job.deadline.is_some_and(|d| Instant::now() + last_run >= d) {
                    let _ = job.reply.send(Err(deadline_passed()));
                    continue;
                }
                let queue_time = job.queued.elapsed();
                let result = engine.score(&mut device, &job.inputs).map(|(rows, engine_time)| Ran {
                    rows,
                    engine_time,
                    queue_time,
                });
                let _ = job.reply.send(result);
            }
        }
        self.ready.store(false, Ordering::SeqCst);
        tracing::info!(model = %engine.name, "engine worker stopped");
    }
}
