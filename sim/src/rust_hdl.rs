//! The engine in rust-hdl's own simulator behind the driver's device interface.
//!
//! [`RustHdlBackend`] runs the `hdl` crate's engine circuit (not its Verilog) in rust-hdl's event-free
//! settle-and-clock simulation, with host memory served by the bridge models of `hdl::dma`, the same ones the
//! `hdl` test benches use. It is the reference the Verilator models are measured against (the speed benchmark)
//! and a debugging aid: a design change can be run on any program before it is exported. It is slow (tens to
//! thousands of cycles per second): use it on small layers.

use std::time::{Duration, Instant};

use arch::EngineConfig;
use driver::{Backend, DriverError};
use hdl::dma::{HostMemory, ReadChannel, WriteChannel};
use hdl::engine::{Engine16x16, Engine32x32, Engine8x8, EnginePorts, EngineTiny};
use hdl::harness::Harness;

use crate::WINDOW_IOVA;

/// Clock cycles simulated between wall-clock checks while waiting for an interrupt.
const CYCLES_PER_CHECK: u64 = 256;

/// An engine of type `E` (`W`-bit memory beats) in rust-hdl's simulator, behind [`driver::Backend`].
pub struct RustHdlBackend<E: EnginePorts<W>, const W: usize> {
    harness: Harness<E>,
    memory: HostMemory,
    fetch: ReadChannel<W>,
    load: ReadChannel<W>,
    store: WriteChannel<W>,
    config: EngineConfig,
    trace: arch::trace::Recorder,
}

// SAFETY: the circuit and the bridge models are plain data owned by this value and touched only through
// `&mut self`; rust-hdl keeps no thread-local or shared state in a circuit.
unsafe impl<E: EnginePorts<W>, const W: usize> Send for RustHdlBackend<E, W> {}

impl<E: EnginePorts<W>, const W: usize> RustHdlBackend<E, W> {
    /// The engine `engine` (built for its configuration; power-on reset done) with a DMA window of `window_bytes`.
    ///
    /// # Errors
    /// [`DriverError::Unavailable`] when rust-hdl's checks reject the circuit.
    pub fn new(engine: Box<E>, window_bytes: usize) -> Result<Self, DriverError> {
        let config = *engine.config();
        let harness = Harness::new(engine, |e| e.clock_mut())
            .map_err(|e| DriverError::Unavailable(format!("rust-hdl's checks reject the engine: {e:?}")))?;
        let mut backend = RustHdlBackend {
            harness,
            memory: HostMemory::new(WINDOW_IOVA, vec![0; window_bytes]),
            fetch: ReadChannel::new(config.dma_latency),
            load: ReadChannel::new(config.dma_latency),
            store: WriteChannel::new(),
            config,
            trace: Default::default(),
        };
        backend.harness.uut.reset_mut().next = true;
        backend.step();
        backend.harness.uut.reset_mut().next = false;
        Ok(backend)
    }

    /// Clock cycles simulated since power-on.
    pub fn cycles(&self) -> u64 {
        self.harness.cycles()
    }

    /// Memory-port protocol violations the bridge models saw; a correct engine leaves this empty.
    pub fn protocol_faults(&self) -> &[String] {
        &self.memory.faults
    }

    /// One clock cycle: this cycle's beats in, settle, requests and writes out, rising edge.
    fn step(&mut self) {
        let (fetch, load, _) = self.harness.uut.channels_mut();
        self.fetch.drive(fetch);
        self.load.drive(load);
        self.harness.settle();
        self.trace.record(self.harness.cycles(), self.harness.uut.trace());
        let (fetch, load, store) = self.harness.uut.channels_mut();
        self.fetch.sample(&mut self.memory, fetch);
        self.load.sample(&mut self.memory, load);
        self.store.sample(&mut self.memory, store);
        // The bridges keep a log of every transfer for the test benches; a long run needs none of it.
        self.fetch.requests.clear();
        self.load.requests.clear();
        self.store.writes.clear();
        self.harness.cycle();
    }
}

impl<E: EnginePorts<W>, const W: usize> Backend for RustHdlBackend<E, W> {
    fn name(&self) -> String {
        format!("rust-hdl:{}", self.config.spec().unwrap_or_else(|| self.config.to_string()))
    }

    fn read32(&mut self, offset: u32) -> Result<u32, DriverError> {
        let bar = self.harness.uut.bar_mut();
        bar.rd_en.next = true;
        bar.rd_addr.next = (offset as u64).into();
        self.step();
        let bar = self.harness.uut.bar_mut();
        bar.rd_en.next = false;
        Ok(bar.rd_data.val().to_u64() as u32)
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), DriverError> {
        let bar = self.harness.uut.bar_mut();
        bar.wr_en.next = true;
        bar.wr_addr.next = (offset as u64).into();
        bar.wr_data.next = (value as u64).into();
        self.step();
        self.harness.uut.bar_mut().wr_en.next = false;
        Ok(())
    }

    fn window(&mut self) -> &mut [u8] {
        &mut self.memory.bytes
    }

    fn window_device_address(&self) -> u64 {
        WINDOW_IOVA
    }

    fn wait_interrupt(&mut self, timeout: Duration) -> Result<bool, DriverError> {
        let start = Instant::now();
        loop {
            for _ in 0..CYCLES_PER_CHECK {
                if self.harness.uut.irq() {
                    return Ok(true);
                }
                self.step();
            }
            if start.elapsed() >= timeout {
                return Ok(self.harness.uut.irq());
            }
        }
    }

    fn timeline(&mut self) -> Option<driver::Timeline> {
        Some(self.trace.timeline())
    }
}

/// The engine of configuration `cfg` (`tiny`, `8x8`, `16x16`, `32x32`) in rust-hdl's simulator, boxed.
///
/// # Errors
/// [`DriverError::Unavailable`] for a configuration no engine type is stamped for.
pub fn rust_hdl_backend(cfg: &EngineConfig, window_bytes: usize) -> Result<Box<dyn Backend>, DriverError> {
    let cfg = *cfg;
    let unavailable = move |e: hdl::HdlError| DriverError::Unavailable(format!("rust-hdl engine {cfg}: {e}"));
    // Building a large engine recurses deeply: build it on a thread with a large stack.
    fn build<E: EnginePorts<W> + 'static, const W: usize>(
        make: fn(&EngineConfig) -> Result<Box<E>, hdl::HdlError>,
        cfg: EngineConfig,
        window_bytes: usize,
        unavailable: impl Fn(hdl::HdlError) -> DriverError,
    ) -> Result<Box<dyn Backend>, DriverError> {
        let engine = std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || make(&cfg).map(SendBox))
            .map_err(|e| DriverError::Unavailable(format!("a thread to build the engine: {e}")))?
            .join()
            .map_err(|_| DriverError::Unavailable("building the engine panicked".into()))?
            .map_err(unavailable)?;
        Ok(Box::new(RustHdlBackend::new(engine.0, window_bytes)?))
    }
    match (cfg.rows, cfg.cols) {
        (4, 4) => build(EngineTiny::new, cfg, window_bytes, unavailable),
        (8, 8) => build(Engine8x8::<512, 1024, 2048, 8>::new, cfg, window_bytes, unavailable),
        (16, 16) => build(Engine16x16::<512, 1024, 2048, 8>::new, cfg, window_bytes, unavailable),
        (32, 32) => build(Engine32x32::<512, 1024, 2048, 8>::new, cfg, window_bytes, unavailable),
        (r, c) => Err(DriverError::Unavailable(format!("no rust-hdl engine is stamped for a {r}x{c} array"))),
    }
}

/// A freshly built circuit moved from the thread that built it (nothing else refers to it).
struct SendBox<E>(Box<E>);
// SAFETY: as for `RustHdlBackend`: the circuit is plain data with a single owner.
unsafe impl<E> Send for SendBox<E> {}
