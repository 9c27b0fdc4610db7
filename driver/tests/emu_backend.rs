//! The driver over the emulated engine: discovery, runs that match the golden model bit for bit, and every
//! error path, with small test doubles for the hardware faults the emulator cannot produce.

mod common;

use std::time::Duration;

use arch::config::EngineConfig;
use arch::golden::Engine;
use arch::isa::{Instruction, Op, Stage};
use arch::regs::{self, ErrorCode};
use driver::{Accelerator, Backend, DriverError, EmuBackend};

const WINDOW: usize = 16 << 20;

#[test]
fn discovers_the_engine_configuration() {
    for (_, cfg) in EngineConfig::presets() {
        let acc = Accelerator::open(EmuBackend::new(cfg, WINDOW).unwrap()).unwrap();
        assert_eq!(acc.config(), &cfg);
        assert!(acc.name().starts_with("emu"));
    }
}

#[test]
fn runs_match_the_golden_model_bit_for_bit_and_report_its_counters() {
    let cfg = EngineConfig::tiny();
    let golden = common::golden_matmul(cfg);
    let mut acc = Accelerator::open(EmuBackend::new(cfg, WINDOW).unwrap()).unwrap();
    // Twice: the ring's head moves on, and counters are per run.
    for _ in 0..2 {
        acc.write_data(&golden.built.window.bytes).unwrap();
        let stats = acc.run(&golden.built.program).unwrap();
        assert_eq!(stats.counters, golden.counters);
        assert_eq!(&acc.data()[golden.output.clone()], &golden.memory[golden.output.clone()]);
    }
}

#[test]
fn an_observer_sees_every_completed_program_and_no_failed_one() {
    let cfg = EngineConfig::tiny();
    let golden = common::golden_matmul(cfg);
    let mut acc = Accelerator::open(EmuBackend::new(cfg, WINDOW).unwrap()).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    acc.observe(move |stats| log.lock().unwrap().push(stats.counters));
    for _ in 0..2 {
        acc.write_data(&golden.built.window.bytes).unwrap();
        acc.run(&golden.built.program).unwrap();
    }
    assert!(acc.run(&common::token_underflow()).is_err());
    assert_eq!(*seen.lock().unwrap(), vec![golden.counters, golden.counters], "two programs completed");
}

#[test]
fn recorded_timelines_time_every_instruction_of_every_completed_program_as_the_cycle_model_does() {
    let cfg = EngineConfig::tiny();
    let golden = common::golden_matmul(cfg);
    let mut acc = Accelerator::open(EmuBackend::new(cfg, WINDOW).unwrap()).unwrap();
    acc.write_data(&golden.built.window.bytes).unwrap();
    acc.run(&golden.built.program).unwrap();
    assert!(acc.take_timelines().is_empty(), "nothing is kept before recording starts");
    acc.record_timelines();
    let mut cycles = Vec::new();
    for _ in 0..2 {
        acc.write_data(&golden.built.window.bytes).unwrap();
        cycles.push(acc.run(&golden.built.program).unwrap().counters.cycles);
    }
    assert!(acc.run(&common::token_underflow()).is_err());
    assert!(acc.timeline().expect("the emulator observes timelines").is_err(), "the last program failed");
    let timelines = acc.take_timelines();
    assert_eq!(timelines.len(), 2, "one per completed program");
    for (timed, cycles) in timelines.into_iter().zip(cycles) {
        assert_eq!(timed.program, golden.built.program);
        let t = timed.timeline.expect("a completed program has a timeline");
        assert_eq!(t.len(), golden.built.program.len(), "every instruction");
        assert_eq!(t.last().unwrap().end, cycles, "FINISH ends at the program's cycle count");
        assert!(t.iter().all(|t| t.dispatch <= t.start && t.start < t.end));
        for (got, inst) in t.iter().zip(&golden.built.program) {
            assert_eq!(got.end - got.start, arch::timing::instruction_cycles(&cfg, inst), "{inst:?}");
        }
    }
    assert!(acc.take_timelines().is_empty(), "taken");
}

#[test]
fn an_engine_error_is_explained_and_the_engine_recovers() {
    let cfg = EngineConfig::tiny();
    let mut acc = Accelerator::open(EmuBackend::new(cfg, WINDOW).unwrap()).unwrap();
    let bad = common::token_underflow();
    match acc.run(&bad) {
        Err(DriverError::Engine { code, pc, detail }) => {
            assert_eq!((code, pc), (ErrorCode::TokenUnderflow as u32, 1));
            assert!(detail.unwrap().contains("no token"));
        }
        other => panic!("expected an engine error, got {other:?}"),
    }
    let message = acc.run(&bad).unwrap_err().to_string();
    assert!(message.contains("TokenUnderflow") && message.contains("instruction 1"), "{message}");
    // After the automatic reset the engine runs good programs again.
    acc.run(&[Instruction::new(Op::Sync(Stage::Store)), Instruction::new(Op::Finish)]).unwrap();
}

#[test]
fn oversized_programs_and_data_are_refused_before_touching_the_engine() {
    let mut acc = Accelerator::open(EmuBackend::new(EngineConfig::tiny(), WINDOW).unwrap()).unwrap();
    let long = vec![Instruction::new(Op::Sync(Stage::Load)); driver::accelerator::RING_SLOTS as usize];
    assert!(matches!(acc.run(&long), Err(DriverError::ProgramTooLong { .. })));
    assert!(matches!(acc.write_data(&vec![0; WINDOW]), Err(DriverError::WindowTooSmall { .. })));
    assert!(matches!(
        Accelerator::open(EmuBackend::new(EngineConfig::tiny(), 4096).unwrap()),
        Err(DriverError::WindowTooSmall { .. })
    ));
}

/// A test double: the emulator with a register overridden, or a doorbell that never completes.
struct Faulty {
    inner: EmuBackend,
    id: Option<u32>,
    version: Option<u32>,
    hang: bool,
    resets: usize,
}

impl Faulty {
    fn new() -> Self {
        Faulty {
            inner: EmuBackend::new(EngineConfig::tiny(), WINDOW).unwrap(),
            id: None,
            version: None,
            hang: false,
            resets: 0,
        }
    }
}

impl Backend for Faulty {
    fn name(&self) -> String {
        "faulty".into()
    }
    fn read32(&mut self, offset: u32) -> Result<u32, DriverError> {
        match offset {
            regs::ID if self.id.is_some() => Ok(self.id.unwrap()),
            regs::VERSION_REG if self.version.is_some() => Ok(self.version.unwrap()),
            regs::STATUS if self.hang => Ok(regs::STATUS_BUSY),
            _ => self.inner.read32(offset),
        }
    }
    fn write32(&mut self, offset: u32, value: u32) -> Result<(), DriverError> {
        if offset == regs::CTRL {
            self.resets += 1;
        }
        if offset == regs::DOORBELL && self.hang {
            return Ok(());
        }
        self.inner.write32(offset, value)
    }
    fn window(&mut self) -> &mut [u8] {
        self.inner.window()
    }
    fn window_device_address(&self) -> u64 {
        self.inner.window_device_address()
    }
    fn wait_interrupt(&mut self, _timeout: Duration) -> Result<bool, DriverError> {
        Ok(false)
    }
}

#[test]
fn discovery_refuses_foreign_and_incompatible_devices() {
    let err = Accelerator::open(Faulty { id: Some(0x010000ed), ..Faulty::new() }).err().unwrap();
    assert!(matches!(err, DriverError::WrongIdentity { found: 0x010000ed, .. }), "{err}");
    let err = Accelerator::open(Faulty { version: Some(2 << 16), ..Faulty::new() }).err().unwrap();
    assert!(matches!(err, DriverError::IncompatibleVersion { .. }), "{err}");
    assert!(err.to_string().contains("2.0.0"));
}

#[test]
fn a_hung_engine_times_out_and_is_reset() {
    let mut acc = Accelerator::open(Faulty { hang: true, ..Faulty::new() }).unwrap();
    acc.set_timeout(Duration::from_millis(50));
    let resets = acc.backend_mut().resets;
    let err = acc.run(&[Instruction::new(Op::Finish)]).unwrap_err();
    assert!(matches!(err, DriverError::Timeout { status: regs::STATUS_BUSY, .. }), "{err}");
    assert_eq!(acc.backend_mut().resets, resets + 1);
}

#[test]
fn registers_behave_as_the_register_map_says() {
    let mut emu = EmuBackend::new(EngineConfig::tiny(), WINDOW).unwrap();
    assert_eq!(emu.read32(regs::ID).unwrap(), regs::ID_MAGIC);
    assert!(emu.read32(regs::BAR0_SIZE).is_err());
    assert!(emu.read32(2).is_err());
    assert_eq!(emu.read32(0xffc).unwrap(), 0, "unlisted offsets read as zero");
    // Read-only registers ignore writes.
    emu.write32(regs::ID, 0).unwrap();
    assert_eq!(emu.read32(regs::ID).unwrap(), regs::ID_MAGIC);
    // IRQ_STATUS is write-one-to-clear.
    emu.write32(regs::CQ_SIZE, 64).unwrap();
    emu.write32(regs::DMA_SIZE, 4096).unwrap();
    let finish = Instruction::new(Op::Finish).to_bytes().unwrap();
    emu.window()[..32].copy_from_slice(&finish);
    emu.write32(regs::DOORBELL, 1).unwrap();
    assert_eq!(emu.read32(regs::CQ_HEAD).unwrap(), 1);
    assert_eq!(emu.read32(regs::IRQ_STATUS).unwrap(), regs::IRQ_DONE);
    emu.write32(regs::IRQ_STATUS, regs::IRQ_ERROR).unwrap();
    assert_eq!(emu.read32(regs::IRQ_STATUS).unwrap(), regs::IRQ_DONE);
    emu.write32(regs::IRQ_STATUS, regs::IRQ_DONE).unwrap();
    assert_eq!(emu.read32(regs::IRQ_STATUS).unwrap(), 0);
    // 64-bit counters: the high half is latched when the low half is read.
    assert_eq!(
        emu.read32(regs::CYCLES_LO).unwrap() as u64,
        Engine::new(EngineConfig::tiny()).run(&[Instruction::new(Op::Finish)], &mut []).unwrap().counters.cycles
    );
    assert_eq!(emu.read32(regs::CYCLES_HI).unwrap(), 0);
    // A misaligned ring base is an error the engine reports.
    emu.write32(regs::CQ_BASE, 16).unwrap();
    emu.write32(regs::DOORBELL, 2).unwrap();
    assert_eq!(emu.read32(regs::STATUS).unwrap(), regs::STATUS_ERROR);
    assert_eq!(emu.read32(regs::ERROR_CODE).unwrap(), ErrorCode::IllegalInstruction as u32);
    // Doorbells are ignored until reset.
    emu.write32(regs::CQ_BASE, 0).unwrap();
    emu.write32(regs::DOORBELL, 2).unwrap();
    assert_eq!(emu.read32(regs::STATUS).unwrap(), regs::STATUS_ERROR);
    emu.write32(regs::CTRL, regs::CTRL_RESET).unwrap();
    assert_eq!(emu.read32(regs::STATUS).unwrap(), regs::STATUS_IDLE);
    assert_eq!(emu.read32(regs::CQ_HEAD).unwrap(), 0);
}
