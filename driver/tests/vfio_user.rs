//! The driver over vfio-user: the engine model served on a Unix socket by `driver::vfio_user::serve_engine`, the
//! driver talking to it through `VfioUserBackend`. Every register access is a vfio-user message, the DMA window
//! is a memfd passed over the socket, and interrupts arrive on an eventfd, so these tests run the register, DMA
//! and interrupt protocol end to end over a real transport.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use arch::config::EngineConfig;
use arch::isa::{Instruction, Op, Stage};
use arch::regs::{self, ErrorCode};
use driver::model::EngineModel;
use driver::vfio_user::{serve_engine, ServerHandle, VfioUserBackend, DEFAULT_IOVA, PCI_DEVICE_ID, PCI_VENDOR_ID};
use driver::{Accelerator, Backend, DriverError};

const WINDOW: usize = 4 << 20;

/// A server for an engine of `cfg` on a socket in a fresh temporary directory (kept alive by the returned guard).
fn server(cfg: EngineConfig) -> (ServerHandle, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.sock");
    let handle = serve_engine(&path, EngineModel::new(cfg).unwrap()).unwrap();
    (handle, path, dir)
}

fn open(path: &Path) -> Accelerator<VfioUserBackend> {
    Accelerator::open(VfioUserBackend::connect(path, WINDOW).unwrap()).unwrap()
}

/// Runs `f` on another thread and fails the test if it takes longer than `limit` (instead of hanging).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("the operation hung")
}

use common::token_underflow;

#[test]
fn discovery_over_vfio_user_reports_the_served_engine() {
    for (_, cfg) in EngineConfig::presets() {
        let (server, path, _dir) = server(cfg);
        let mut acc = open(&path);
        assert_eq!(acc.config(), &cfg);
        assert!(acc.name().starts_with("vfio-user "), "{}", acc.name());
        let backend = acc.backend_mut();
        assert_eq!(backend.pci_ids(), (PCI_VENDOR_ID, PCI_DEVICE_ID));
        assert_eq!(backend.window_device_address(), DEFAULT_IOVA);
        // The driver programmed the window's IOVA into the engine, through the socket.
        let base = backend.read32(regs::DMA_BASE_LO).unwrap() as u64
            | (backend.read32(regs::DMA_BASE_HI).unwrap() as u64) << 32;
        assert_eq!(base, DEFAULT_IOVA);
        drop(acc);
        assert_eq!(server.stop().unwrap().config(), &cfg);
    }
}

#[test]
fn runs_match_the_golden_model_bit_for_bit_and_report_its_counters() {
    let cfg = EngineConfig::tiny();
    let golden = common::golden_matmul(cfg);
    let (built, golden_mem, range) = (&golden.built, &golden.memory, golden.output.clone());
    let (server, path, _dir) = server(cfg);
    let mut acc = open(&path);
    // Twice: the ring's head moves on, and counters are per run.
    for _ in 0..2 {
        acc.data()[range.clone()].fill(0xAA);
        acc.write_data(&built.window.bytes).unwrap();
        let stats = acc.run(&built.program).unwrap();
        assert_eq!(stats.counters, golden.counters);
        // The engine wrote these bytes into the client's memory through the shared mapping.
        assert_eq!(&acc.data()[range.clone()], &golden_mem[range.clone()]);
        assert_eq!(&acc.data()[..built.window.bytes.len()], &golden_mem[..]);
        // Completion was signalled on the eventfd (the driver saw DONE before waiting, so it is still pending).
        assert!(acc.backend_mut().wait_interrupt(Duration::ZERO).unwrap());
    }
    drop(acc);
    let model = server.stop().unwrap();
    assert_eq!(model.counters().instructions, 2 * golden.counters.instructions);
}

#[test]
fn an_engine_error_arrives_with_its_code_and_pc_and_the_engine_recovers() {
    let (server, path, _dir) = server(EngineConfig::tiny());
    let mut acc = open(&path);
    match acc.run(&token_underflow()) {
        Err(DriverError::Engine { code, pc, detail }) => {
            assert_eq!((code, pc), (ErrorCode::TokenUnderflow as u32, 1));
            assert_eq!(detail, None, "a vfio-user device reports codes only, as hardware does");
        }
        other => panic!("expected an engine error, got {other:?}"),
    }
    let before = acc.backend_mut().interrupts();
    assert!(acc.backend_mut().wait_interrupt(Duration::from_secs(1)).unwrap(), "the error raised an interrupt");
    assert_eq!(acc.backend_mut().interrupts(), before + 1);
    let message = acc.run(&token_underflow()).unwrap_err().to_string();
    assert!(message.contains("TokenUnderflow") && message.contains("instruction 1"), "{message}");
    // After the driver's reset the engine runs good programs again.
    acc.run(&[Instruction::new(Op::Sync(Stage::Store)), Instruction::new(Op::Finish)]).unwrap();
    drop(acc);
    server.stop().unwrap();
}

#[test]
fn interrupts_follow_irq_enable_and_status_through_the_eventfd() {
    let (server, path, _dir) = server(EngineConfig::tiny());
    let mut dev = VfioUserBackend::connect(&path, WINDOW).unwrap();
    let finish = Instruction::new(Op::Finish).to_bytes().unwrap();
    dev.window()[..32].copy_from_slice(&finish);
    dev.write32(regs::CTRL, regs::CTRL_RESET).unwrap();
    dev.write32(regs::DMA_BASE_LO, DEFAULT_IOVA as u32).unwrap();
    dev.write32(regs::DMA_BASE_HI, (DEFAULT_IOVA >> 32) as u32).unwrap();
    dev.write32(regs::DMA_SIZE, 4096).unwrap();
    dev.write32(regs::CQ_SIZE, 64).unwrap();
    // Interrupts disabled: DONE is set, but nothing is signalled.
    dev.write32(regs::DOORBELL, 1).unwrap();
    assert_eq!(dev.read32(regs::IRQ_STATUS).unwrap(), regs::IRQ_DONE);
    assert!(!dev.wait_interrupt(Duration::from_millis(20)).unwrap());
    // Enabling DONE while it is pending raises the line.
    dev.write32(regs::IRQ_ENABLE, regs::IRQ_DONE | regs::IRQ_ERROR).unwrap();
    assert!(dev.wait_interrupt(Duration::from_secs(1)).unwrap());
    assert!(!dev.wait_interrupt(Duration::ZERO).unwrap(), "one edge, one interrupt");
    // Clear, run the next program: one more interrupt.
    dev.write32(regs::IRQ_STATUS, regs::IRQ_DONE).unwrap();
    dev.window()[32..64].copy_from_slice(&finish);
    dev.write32(regs::DOORBELL, 2).unwrap();
    assert!(dev.wait_interrupt(Duration::from_secs(1)).unwrap());
    assert_eq!(dev.read32(regs::CQ_HEAD).unwrap(), 2);
    assert_eq!(dev.interrupts(), 2);
    drop(dev);
    server.stop().unwrap();
}

#[test]
fn a_window_outside_the_mapped_memory_is_a_dma_error() {
    let (server, path, _dir) = server(EngineConfig::tiny());
    let mut dev = VfioUserBackend::connect(&path, WINDOW).unwrap();
    dev.window()[..32].copy_from_slice(&Instruction::new(Op::Finish).to_bytes().unwrap());
    dev.write32(regs::CQ_SIZE, 64).unwrap();
    dev.write32(regs::IRQ_ENABLE, regs::IRQ_ERROR).unwrap();
    // Nothing is mapped at IOVA 0.
    dev.write32(regs::DMA_SIZE, 4096).unwrap();
    dev.write32(regs::DOORBELL, 1).unwrap();
    assert!(dev.wait_interrupt(Duration::from_secs(1)).unwrap());
    assert_eq!(dev.read32(regs::STATUS).unwrap(), regs::STATUS_ERROR);
    assert_eq!(dev.read32(regs::ERROR_CODE).unwrap(), ErrorCode::DmaOutOfBounds as u32);
    // A window that starts inside the mapping but runs past its end: the ring at its top is unreachable.
    dev.write32(regs::CTRL, regs::CTRL_RESET).unwrap();
    let base = DEFAULT_IOVA + WINDOW as u64 - 4096;
    dev.write32(regs::DMA_BASE_LO, base as u32).unwrap();
    dev.write32(regs::DMA_BASE_HI, (base >> 32) as u32).unwrap();
    dev.write32(regs::DMA_SIZE, 8192).unwrap();
    dev.write32(regs::CQ_BASE, 4096).unwrap();
    dev.write32(regs::CQ_SIZE, 64).unwrap();
    dev.write32(regs::DOORBELL, 1).unwrap();
    assert_eq!(dev.read32(regs::ERROR_CODE).unwrap(), ErrorCode::DmaOutOfBounds as u32);
    drop(dev);
    server.stop().unwrap();
}

#[test]
fn clients_come_and_go_and_the_engine_serves_each() {
    let (server, path, _dir) = server(EngineConfig::tiny());
    for _ in 0..3 {
        let mut acc = open(&path);
        acc.run(&[Instruction::new(Op::Sync(Stage::Load)), Instruction::new(Op::Finish)]).unwrap();
    }
    assert!(server.is_running());
    server.stop().unwrap();
    assert!(!path.exists(), "stopping removes the socket");
}

#[test]
fn misaligned_or_out_of_range_registers_are_refused_before_sending() {
    let (server, path, _dir) = server(EngineConfig::tiny());
    let mut dev = VfioUserBackend::connect(&path, WINDOW).unwrap();
    assert!(matches!(dev.read32(2), Err(DriverError::Register { offset: 2 })));
    assert!(matches!(dev.write32(regs::BAR0_SIZE, 0), Err(DriverError::Register { .. })));
    assert_eq!(dev.read32(0xffc).unwrap(), 0, "unlisted offsets read as zero");
    assert_eq!(dev.read32(regs::ID).unwrap(), regs::ID_MAGIC);
    drop(dev);
    server.stop().unwrap();
}

#[test]
fn a_server_that_goes_away_gives_a_clear_error() {
    let (server, path, _dir) = server(EngineConfig::tiny());
    let mut acc = open(&path);
    server.stop().unwrap();
    let (err, mut acc) =
        within(Duration::from_secs(10), move || (acc.run(&[Instruction::new(Op::Finish)]).unwrap_err(), acc));
    let DriverError::VfioUser(message) = &err else { panic!("expected a vfio-user error, got {err:?}") };
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("still running"), "{message}");
    // It stays an error, quickly.
    let err = within(Duration::from_secs(10), move || acc.backend_mut().read32(regs::STATUS).unwrap_err());
    assert!(matches!(err, DriverError::VfioUser(_)), "{err}");
}

#[test]
fn connecting_to_nothing_and_serving_twice_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nobody.sock");
    let err = VfioUserBackend::connect(&path, WINDOW).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("nobody.sock") && message.contains("listening"), "{message}");

    let (server, path, _dir) = server(EngineConfig::tiny());
    let err = serve_engine(&path, EngineModel::new(EngineConfig::tiny()).unwrap()).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    assert!(server.is_running(), "a refused second server does not disturb the first");
    server.stop().unwrap();
}

#[test]
fn a_misbehaving_client_loses_its_connection_and_the_server_goes_on() {
    let (server, path, _dir) = server(EngineConfig::tiny());
    // Raw bytes, not vfio-user: a VERSION message whose size field (0) is shorter than the message itself, then
    // an unknown command.
    let header = |command: u16, size: u32| {
        let mut h = Vec::new();
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&command.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h
    };
    for message in [[header(1, 0), vec![0; 4]].concat(), header(0x77, 16)] {
        let mut garbage = UnixStream::connect(&path).unwrap();
        garbage.write_all(&message).unwrap();
        drop(garbage);
    }
    let mut acc = within(Duration::from_secs(10), move || open(&path));
    acc.run(&[Instruction::new(Op::Finish)]).unwrap();
    drop(acc);
    assert!(server.is_running());
    server.stop().unwrap();
}
