//! `systole device list|info|selftest`: engines the driver can reach, what they report, and a known program
//! run on one and checked against the golden model.

use anyhow::{bail, Context, Result};
use driver::device::DeviceSpec;
use driver::{Accelerator, Backend};

/// `systole device list`: the emulated engine, and PCI devices bound to vfio-pci with the given IDs.
pub fn list(ids: &[(u16, u16)]) -> Result<()> {
    println!("emu                 the emulated engine (golden model, fast kernel); any configuration: emu:CONFIG");
    println!("rust-hdl:CONFIG     the engine's circuit in rust-hdl's simulator (slow): tiny, 8x8, 16x16, 32x32");
    let models = sim::models();
    if models.is_empty() {
        println!("(no Verilator models in this build: build with --features verilator for verilator:MODEL)");
    }
    for m in models {
        let mut notes = Vec::new();
        if m.threads > 1 {
            notes.push(format!("{} threads", m.threads));
        }
        if m.trace {
            notes.push("waveforms: --trace".to_string());
        }
        let variant = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
        println!("verilator:{:<10} the engine's RTL ({}) under Verilator{variant}", m.name, m.top);
    }
    if ids.is_empty() {
        println!("(no PCI IDs given: pass --pci-id VENDOR:DEVICE to look for engines on the PCI bus)");
        return Ok(());
    }
    let found = driver::vfio::scan(ids).context("scanning /sys/bus/pci/devices")?;
    if found.is_empty() {
        println!(
            "no PCI device with IDs {}",
            ids.iter().map(|(v, d)| format!("{v:04x}:{d:04x}")).collect::<Vec<_>>().join(", ")
        );
    }
    for d in found {
        let state = match (&d.driver, d.iommu_group) {
            _ if d.is_ready_for_vfio() => "ready".to_string(),
            (Some(drv), _) => format!("bound to {drv}: bind it to vfio-pci first (docs/driver.md)"),
            (None, None) => "no IOMMU group: enable the IOMMU (intel_iommu=on / amd_iommu=on)".to_string(),
            (None, Some(_)) => "not bound to any driver: bind it to vfio-pci (docs/driver.md)".to_string(),
        };
        println!("vfio:{}  {:04x}:{:04x}  {state}", d.address, d.vendor, d.device);
    }
    Ok(())
}

/// Opens the named device (with `options` for a simulated one) and the driver on it. A simulated engine runs
/// thousands of times slower than the hardware it models, so the driver waits up to an hour for a program.
pub fn open_with(spec: &DeviceSpec, options: &sim::SimOptions) -> Result<Accelerator<Box<dyn driver::Backend>>> {
    let backend = sim::open_device(spec, options).with_context(|| format!("opening {spec}"))?;
    let mut acc = Accelerator::open(backend).with_context(|| format!("discovering the engine on {spec}"))?;
    if spec.is_simulated() {
        acc.set_timeout(std::time::Duration::from_secs(3600));
    }
    Ok(acc)
}

/// Opens the named device and the driver on it.
fn open(spec: &DeviceSpec) -> Result<Accelerator<Box<dyn driver::Backend>>> {
    open_with(spec, &sim::SimOptions::default())
}

/// `systole device info`: identity, version and configuration as the engine reports them, and its counters.
pub fn info(spec: &DeviceSpec) -> Result<()> {
    let mut acc = open(spec)?;
    let cfg = *acc.config();
    println!("device       {}", acc.name());
    let b = acc.backend_mut();
    let (id, version) = (b.read32(arch::regs::ID)?, b.read32(arch::regs::VERSION_REG)?);
    println!(
        "identity     ID {id:#010x} (systole engine), register map and ISA version {}.{}.{}",
        version >> 16,
        (version >> 8) & 0xff,
        version & 0xff
    );
    println!(
        "array        {}x{} ({} MACs, {:.1} GMAC/s peak at {} MHz)",
        cfg.rows,
        cfg.cols,
        cfg.macs(),
        cfg.peak_macs_per_second() / 1e9,
        cfg.clock_mhz
    );
    println!(
        "format       {} (block {}, {}-bit mantissas, {}-bit shared exponents)",
        cfg.format,
        cfg.format.block_size(),
        cfg.format.mantissa_bits(),
        cfg.format.exponent_bits()
    );
    println!(
        "buffers      act {} blocks, wgt {} blocks, acc {} f32, out {} blocks",
        cfg.act_entries, cfg.wgt_entries, cfg.acc_entries, cfg.out_entries
    );
    println!(
        "memory port  {} B/cycle, {} cycles latency; queues {} deep, fetch bursts of {}",
        cfg.dma_bytes_per_cycle, cfg.dma_latency, cfg.queue_depth, cfg.fetch_burst
    );
    println!("DMA window   {} MiB of data", acc.data().len() >> 20);
    let c = acc.counters()?;
    println!("counters     {} cycles, {} instructions, {} MACs since reset", c.cycles, c.instructions, c.macs);
    Ok(())
}

/// `systole device selftest`: runs the driver's self-test program and compares bits and cycles with the
/// golden model; fails unless they are identical.
pub fn selftest(spec: &DeviceSpec) -> Result<()> {
    let mut acc = open(spec)?;
    let r = driver::selftest(&mut acc).with_context(|| format!("running the self-test on {spec}"))?;
    println!("device       {}", acc.name());
    println!(
        "program      tiled matmul with bias, ReLU and BFP output: {} MACs, {} instructions",
        r.golden.macs, r.golden.instructions
    );
    println!("output       {} bytes compared, {} differ from the golden model", r.bytes_compared, r.mismatched_bytes);
    println!("cycles       device {}, golden model {}", r.device.cycles, r.golden.cycles);
    if !r.passed() {
        bail!("self-test FAILED on {spec}: device counters {:?}, golden {:?}", r.device, r.golden);
    }
    println!("result       PASS");
    Ok(())
}
