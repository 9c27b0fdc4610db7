//! `vfio-edu-selftest`: exercises the driver's VFIO layer for real against QEMU's `edu` teaching device.
//!
//! Run inside a VM (see `scripts/qemu-vfio-test.sh`) with the edu device bound to vfio-pci. It opens the
//! device, checks config space and bus mastering, maps BAR0, checks the ID and liveness registers, computes
//! factorials (polled and with an MSI interrupt), moves a pattern RAM → device → RAM by DMA through the IOMMU,
//! with the completion signalled by MSI, and checks the DMA buffers' mapping and unmapping. It ends with one
//! line, `SYSTOLE-VFIO-SELFTEST: PASS` or `SYSTOLE-VFIO-SELFTEST: FAIL <reason>`, and exits 0 or 1.
//!
//! ```text
//! vfio-edu-selftest [--bar-offset-bug] [ADDRESS]
//! ```
//!
//! Without an address it uses the first edu device (PCI 1234:11e8) it finds. `--bar-offset-bug` shifts every
//! register access by 4 bytes, a deliberate bug that must make the test fail.
//!
//! The edu registers (QEMU `hw/misc/edu.c`, `docs/specs/edu.rst`): 0x00 ID `0x010000ed`; 0x04 liveness
//! (reads back the inverse of what was written); 0x08 factorial; 0x20 status (bit 0 computing, bit 7 raise an
//! interrupt when done); 0x24 interrupt status; 0x60 raise interrupt (ORs the value into the status); 0x64
//! acknowledge (clears it); DMA: 0x80 source, 0x88 destination, 0x90 count, 0x98 command (bit 0 start, bit 1
//! direction: 0 RAM → device, 1 device → RAM, bit 2 interrupt 0x100 when done), with a 4 KiB buffer at
//! device address 0x40000; the device masks DMA addresses to 28 bits.

use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

use driver::vfio::{
    InterruptKind, Mmio, PciAddress, Sysfs, VfioBackend, VfioError, VfioPciDevice, PCI_COMMAND, PCI_COMMAND_MASTER,
    WINDOW_IOVA,
};
use driver::Backend;

/// QEMU's edu device: PCI vendor and device ID.
const EDU_IDS: (u16, u16) = (0x1234, 0x11e8);
const EDU_ID_VALUE: u32 = 0x0100_00ed;
const REG_ID: u64 = 0x00;
const REG_LIVENESS: u64 = 0x04;
const REG_FACTORIAL: u64 = 0x08;
const REG_STATUS: u64 = 0x20;
const REG_IRQ_STATUS: u64 = 0x24;
const REG_IRQ_RAISE: u64 = 0x60;
const REG_IRQ_ACK: u64 = 0x64;
const REG_DMA_SRC: u64 = 0x80;
const REG_DMA_DST: u64 = 0x88;
const REG_DMA_COUNT: u64 = 0x90;
const REG_DMA_CMD: u64 = 0x98;
const STATUS_COMPUTING: u32 = 0x01;
const STATUS_IRQ_FACTORIAL: u32 = 0x80;
const IRQ_FACTORIAL: u32 = 0x001;
const IRQ_DMA: u32 = 0x100;
const DMA_START: u32 = 0x1;
const DMA_TO_RAM: u32 = 0x2;
const DMA_IRQ: u32 = 0x4;
/// Where the edu device's own DMA buffer sits in its address space, and its size.
const EDU_BUFFER: u32 = 0x4_0000;
const EDU_BUFFER_LEN: usize = 4096;
/// The IOVA of our DMA buffer: edu masks DMA addresses to 28 bits, so it must lie below 256 MiB.
const DMA_IOVA: u64 = 0x0100_0000;
/// How long to wait for anything the device does (QEMU's edu DMA completes after 100 ms of virtual time;
/// the VM runs under TCG, which is slow).
const TIMEOUT: Duration = Duration::from_secs(20);

struct Options {
    address: Option<String>,
    bar_offset_bug: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options { address: None, bar_offset_bug: false };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bar-offset-bug" => opts.bar_offset_bug = true,
            "-h" | "--help" => {
                return Err("usage: vfio-edu-selftest [--bar-offset-bug] [PCI-ADDRESS]".into());
            }
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            a if opts.address.is_none() => opts.address = Some(a.to_string()),
            a => return Err(format!("unexpected argument {a}")),
        }
    }
    Ok(opts)
}

/// BAR0 of the edu device, with the deliberate bug switchable.
struct Edu<'a> {
    bar: &'a Mmio,
    skew: u64,
}

impl Edu<'_> {
    fn read(&self, reg: u64) -> Result<u32, String> {
        self.bar.read32(reg + self.skew).map_err(|e| format!("reading register {reg:#x}: {e}"))
    }

    fn write(&self, reg: u64, value: u32) -> Result<(), String> {
        self.bar.write32(reg + self.skew, value).map_err(|e| format!("writing register {reg:#x}: {e}"))
    }

    /// Polls `reg` until `done(value)` or [`TIMEOUT`].
    fn poll(&self, reg: u64, what: &str, done: impl Fn(u32) -> bool) -> Result<u32, String> {
        let start = Instant::now();
        loop {
            let v = self.read(reg)?;
            if done(v) {
                return Ok(v);
            }
            if start.elapsed() > TIMEOUT {
                return Err(format!("{what}: still not done after {TIMEOUT:?} (register {reg:#x} = {v:#010x})"));
            }
            sleep(Duration::from_millis(1));
        }
    }

    fn expect(&self, reg: u64, want: u32, what: &str) -> Result<(), String> {
        let got = self.read(reg)?;
        if got != want {
            return Err(format!("{what}: register {reg:#x} reads {got:#010x}, expected {want:#010x}"));
        }
        Ok(())
    }
}

fn step(name: &str) {
    println!("selftest: {name}");
}

fn ve(what: &str) -> impl Fn(VfioError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn find_device(opts: &Options) -> Result<String, String> {
    if let Some(a) = &opts.address {
        return Ok(a.clone());
    }
    let found = Sysfs::new().scan(&[EDU_IDS]).map_err(ve("scanning PCI devices"))?;
    for d in &found {
        println!(
            "selftest: found edu at {} (driver {}, IOMMU group {})",
            d.address,
            d.driver.as_deref().unwrap_or("none"),
            d.iommu_group.map_or("none".to_string(), |g| g.to_string())
        );
    }
    found.first().map(|d| d.address.to_string()).ok_or_else(|| "no edu device (PCI 1234:11e8) found".to_string())
}

fn pattern(i: usize) -> u8 {
    ((i * 7 + 13) ^ (i >> 8) ^ 0x5a) as u8
}

fn run(opts: &Options) -> Result<(), String> {
    let address = find_device(opts)?;
    let address = PciAddress::parse(&address).map_err(|e| e.to_string())?;

    step(&format!("opening {address} through VFIO"));
    let mut dev = VfioPciDevice::open(address.as_str()).map_err(ve("opening the device"))?;
    println!("selftest: IOMMU group {}", dev.iommu_group());

    step("a second opening of the group is refused while it is open");
    match VfioPciDevice::open(address.as_str()) {
        Err(e @ VfioError::GroupBusy { .. }) => println!("selftest: refused as expected: {e}"),
        Err(e) => return Err(format!("a second opening failed with the wrong error: {e}")),
        Ok(_) => return Err("the device was opened twice at once".into()),
    }

    step("config space: vendor and device IDs");
    let ids = dev.ids().map_err(ve("reading config space"))?;
    if ids != EDU_IDS {
        return Err(format!("config space IDs are {:04x}:{:04x}, expected 1234:11e8", ids.0, ids.1));
    }

    step("bus mastering");
    let before = dev.config_read16(PCI_COMMAND).map_err(ve("reading the command register"))?;
    dev.enable_bus_master().map_err(ve("enabling bus mastering"))?;
    let after = dev.config_read16(PCI_COMMAND).map_err(ve("reading the command register"))?;
    println!("selftest: command register {before:#06x} -> {after:#06x}");
    if after & PCI_COMMAND_MASTER == 0 {
        return Err(format!("bus master bit not set: command register {after:#06x}"));
    }

    step("mapping BAR0");
    let bar = dev.map_bar(0).map_err(ve("mapping BAR0"))?;
    println!("selftest: BAR0 is {:#x} bytes", bar.len());
    if bar.read32(bar.len() as u64).is_ok() || bar.read32(2).is_ok() {
        return Err("an out-of-bounds or unaligned BAR access was not refused".into());
    }
    let skew = if opts.bar_offset_bug { 4 } else { 0 };
    let edu = Edu { bar: &bar, skew };
    if opts.bar_offset_bug {
        println!("selftest: --bar-offset-bug: every register access is 4 bytes off (this run must FAIL)");
    }

    step("identification register");
    edu.expect(REG_ID, EDU_ID_VALUE, "ID")?;

    step("liveness register");
    for v in [0x1234_5678u32, 0, 0xffff_ffff, 0xa5a5_0f0f] {
        edu.write(REG_LIVENESS, v)?;
        edu.expect(REG_LIVENESS, !v, "liveness (reads back the inverse)")?;
    }

    step("factorial, polled");
    edu.write(REG_STATUS, 0)?;
    edu.write(REG_FACTORIAL, 12)?;
    edu.poll(REG_STATUS, "factorial of 12", |s| s & STATUS_COMPUTING == 0)?;
    edu.expect(REG_FACTORIAL, 479_001_600, "12!")?;

    step("MSI: enabling");
    let kind = dev.enable_interrupts().map_err(ve("enabling interrupts"))?;
    if kind != InterruptKind::Msi {
        return Err(format!("expected MSI (edu has no MSI-X), got {kind:?}"));
    }
    if dev.wait_interrupt(Duration::from_millis(50)).map_err(ve("waiting for no interrupt"))? {
        return Err("an interrupt arrived before any was raised".into());
    }

    step("MSI: raised by register");
    let token = 0x4000_0000;
    edu.write(REG_IRQ_RAISE, token)?;
    if !dev.wait_interrupt(TIMEOUT).map_err(ve("waiting for the raised interrupt"))? {
        return Err(format!("no MSI within {TIMEOUT:?} after raising one"));
    }
    edu.expect(REG_IRQ_STATUS, token, "interrupt status after raising")?;
    edu.write(REG_IRQ_ACK, token)?;
    edu.expect(REG_IRQ_STATUS, 0, "interrupt status after acknowledging")?;

    step("MSI: factorial completion");
    edu.write(REG_STATUS, STATUS_IRQ_FACTORIAL)?;
    edu.write(REG_FACTORIAL, 10)?;
    if !dev.wait_interrupt(TIMEOUT).map_err(ve("waiting for the factorial interrupt"))? {
        return Err(format!("no MSI within {TIMEOUT:?} after a factorial with interrupt"));
    }
    let st = edu.read(REG_IRQ_STATUS)?;
    if st & IRQ_FACTORIAL == 0 {
        return Err(format!("interrupt status {st:#x} lacks the factorial bit after its MSI"));
    }
    edu.write(REG_IRQ_ACK, st)?;
    edu.write(REG_STATUS, 0)?;
    edu.expect(REG_FACTORIAL, 3_628_800, "10!")?;

    step("DMA buffers: map, refuse an overlapping map, unmap on drop");
    {
        let first = dev.alloc_dma(4096, DMA_IOVA).map_err(ve("mapping a DMA buffer"))?;
        match dev.alloc_dma(4096, DMA_IOVA) {
            Err(VfioError::DmaMap { .. }) => {}
            Err(e) => return Err(format!("mapping an overlapping DMA buffer failed with the wrong error: {e}")),
            Ok(_) => return Err("an overlapping DMA mapping was accepted".into()),
        }
        drop(first);
        // If dropping had not unmapped the IOVA range, this would fail as the overlap above did.
        let again = dev.alloc_dma(4096, DMA_IOVA).map_err(ve("remapping a DMA buffer after drop"))?;
        drop(again);
    }

    step("DMA: RAM -> device -> RAM through the IOMMU, completion by MSI");
    let buf = dev.alloc_dma(2 * EDU_BUFFER_LEN, DMA_IOVA).map_err(ve("mapping the DMA buffer"))?;
    println!("selftest: DMA buffer of {} bytes at IOVA {:#x}", buf.len(), buf.iova());
    let data: Vec<u8> = (0..EDU_BUFFER_LEN).map(pattern).collect();
    buf.fill(0);
    buf.write(0, &data).map_err(ve("filling the DMA buffer"))?;
    let iova = |off: u64| -> Result<u32, String> {
        u32::try_from(buf.iova() + off).map_err(|_| "IOVA beyond 32 bits".to_string())
    };
    // RAM -> device buffer.
    edu.write(REG_DMA_SRC, iova(0)?)?;
    edu.write(REG_DMA_DST, EDU_BUFFER)?;
    edu.write(REG_DMA_COUNT, EDU_BUFFER_LEN as u32)?;
    edu.write(REG_DMA_CMD, DMA_START)?;
    edu.poll(REG_DMA_CMD, "DMA RAM -> device", |c| c & DMA_START == 0)?;
    // Device buffer -> the second page of RAM, with an interrupt when done.
    edu.write(REG_DMA_SRC, EDU_BUFFER)?;
    edu.write(REG_DMA_DST, iova(EDU_BUFFER_LEN as u64)?)?;
    edu.write(REG_DMA_COUNT, EDU_BUFFER_LEN as u32)?;
    edu.write(REG_DMA_CMD, DMA_START | DMA_TO_RAM | DMA_IRQ)?;
    if !dev.wait_interrupt(TIMEOUT).map_err(ve("waiting for the DMA interrupt"))? {
        return Err(format!("no MSI within {TIMEOUT:?} after a DMA with interrupt"));
    }
    let st = edu.read(REG_IRQ_STATUS)?;
    if st & IRQ_DMA == 0 {
        return Err(format!("interrupt status {st:#x} lacks the DMA bit (0x100) after its MSI"));
    }
    edu.write(REG_IRQ_ACK, st)?;
    edu.poll(REG_DMA_CMD, "DMA device -> RAM", |c| c & DMA_START == 0)?;
    let mut back = vec![0u8; EDU_BUFFER_LEN];
    buf.read(EDU_BUFFER_LEN, &mut back).map_err(ve("reading the DMA buffer"))?;
    if let Some(i) = (0..EDU_BUFFER_LEN).find(|&i| back[i] != data[i]) {
        return Err(format!(
            "DMA round trip corrupted the data: byte {i} is {:#04x}, expected {:#04x}",
            back[i], data[i]
        ));
    }
    if buf.read(2 * EDU_BUFFER_LEN, &mut [0u8; 1]).is_ok() {
        return Err("an out-of-bounds DMA buffer access was not refused".into());
    }
    println!("selftest: {EDU_BUFFER_LEN} bytes came back intact");

    step("interrupts off, device closed");
    dev.disable_interrupts().map_err(ve("disabling interrupts"))?;
    drop(buf);
    drop(bar);
    drop(dev);

    // Reopening proves that closing released the group; the backend is what the driver uses for an engine.
    step("Backend: VfioBackend over the same device, reopened");
    backend_checks(address.as_str(), skew)?;
    Ok(())
}

/// Drives the edu device through [`VfioBackend`] and the [`Backend`] trait: registers, the DMA window and
/// interrupts (the window cannot be reached by edu's 28-bit DMA, so only its mapping is checked).
fn backend_checks(address: &str, skew: u64) -> Result<(), String> {
    let de = |what: &'static str| move |e: driver::DriverError| format!("backend: {what}: {e}");
    let skew = u32::try_from(skew).map_err(|_| "skew too large".to_string())?;
    let mut be = VfioBackend::open(address, 64 * 1024).map_err(ve("opening VfioBackend"))?;
    println!("selftest: backend `{}`", be.name());
    let id = be.read32(REG_ID as u32 + skew).map_err(de("reading ID"))?;
    if id != EDU_ID_VALUE {
        return Err(format!("backend: ID reads {id:#010x}, expected {EDU_ID_VALUE:#010x}"));
    }
    be.write32(REG_LIVENESS as u32 + skew, 0x0bad_cafe).map_err(de("writing liveness"))?;
    let live = be.read32(REG_LIVENESS as u32 + skew).map_err(de("reading liveness"))?;
    if live != !0x0bad_cafe {
        return Err(format!("backend: liveness reads {live:#010x}, expected {:#010x}", !0x0bad_cafe_u32));
    }
    match be.read32(2) {
        Err(driver::DriverError::Register { offset: 2 }) => {}
        other => return Err(format!("backend: an unaligned read gave {other:?}, expected a Register error")),
    }
    if be.window_device_address() != WINDOW_IOVA {
        return Err(format!("backend: window at {:#x}, expected {WINDOW_IOVA:#x}", be.window_device_address()));
    }
    let window = be.window();
    if window.len() != 64 * 1024 || window.iter().any(|&b| b != 0) {
        return Err("backend: the window is not 64 KiB of zeros".into());
    }
    window[..4].copy_from_slice(b"SYST");
    if &be.window()[..4] != b"SYST" {
        return Err("backend: the window does not keep what was written".into());
    }
    if be.wait_interrupt(Duration::from_millis(20)).map_err(de("waiting for no interrupt"))? {
        return Err("backend: an interrupt arrived before any was raised".into());
    }
    be.write32(REG_IRQ_RAISE as u32 + skew, 0x2).map_err(de("raising an interrupt"))?;
    if !be.wait_interrupt(TIMEOUT).map_err(de("waiting for the interrupt"))? {
        return Err(format!("backend: no MSI within {TIMEOUT:?}"));
    }
    be.write32(REG_IRQ_ACK as u32 + skew, 0x2).map_err(de("acknowledging the interrupt"))?;
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|opts| run(&opts));
    match result {
        Ok(()) => {
            println!("SYSTOLE-VFIO-SELFTEST: PASS");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            println!("SYSTOLE-VFIO-SELFTEST: FAIL {}", reason.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
