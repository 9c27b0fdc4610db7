//! The engine's instruction-trace port: what the RTL tells a simulator about every instruction, so that
//! each one's dispatch, start and end cycle can be compared with [`crate::timing`] (the golden model's
//! [`RunReport::timeline`](crate::golden::RunReport::timeline)).
//!
//! The engine drives a 16-bit output, `inst_trace`, every cycle; no logic inside the engine reads it, so a board's
//! top level leaves it unconnected and synthesis removes nothing but wires. Its bits, all describing the
//! current cycle:
//!
//! | bits | name | meaning |
//! |---|---|---|
//! | 0 | [`RUNNING`] | a program is executing: high from cycle 0 (the cycle after the doorbell) to FINISH's cycle |
//! | 1 | [`DISPATCH`] | an instruction enters its stage's queue (in program order: the k-th is instruction k) |
//! | 2–4 | [`DISPATCH_STAGE_LSB`] | the dispatched instruction's stage, one-hot (load, compute, store); 0 for FINISH |
//! | 5–7 | [`START_LSB`] | per stage: its oldest queued instruction starts |
//! | 8–10 | [`END_LSB`] | per stage: its running instruction's last cycle (it ends, in `Timing` terms, at the next) |
//! | 11 | [`FINISH`] | FINISH's cycle, its only one: the program completes |
//!
//! A stage runs one instruction at a time and starts its queue in order, so these bits name every
//! instruction without carrying an index: [`timeline`] rebuilds the program's [`Timing`]s from the cycles
//! in which any bit other than `RUNNING` was set and those in which `RUNNING` changed.

use std::collections::VecDeque;

use crate::timing::Timing;

/// Bit 0: a program is executing (cycle 0 is the first cycle it is high).
pub const RUNNING: u16 = 1 << 0;
/// Bit 1: an instruction is dispatched this cycle.
pub const DISPATCH: u16 = 1 << 1;
/// Lowest of the three one-hot bits giving the dispatched instruction's stage (`arch::isa::Stage` order).
pub const DISPATCH_STAGE_LSB: u32 = 2;
/// Lowest of the three per-stage bits: the stage starts an instruction this cycle.
pub const START_LSB: u32 = 5;
/// Lowest of the three per-stage bits: the stage's instruction is in its last cycle.
pub const END_LSB: u32 = 8;
/// Bit 11: FINISH executes (its one cycle) this cycle.
pub const FINISH: u16 = 1 << 11;
/// The width of the trace port in bits.
pub const TRACE_BITS: usize = 16;

/// The trace port's value in one cycle, with the cycle (any origin: [`timeline`] takes cycle 0 from
/// `RUNNING`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// The simulator's cycle number.
    pub cycle: u64,
    /// The port's bits in that cycle.
    pub bits: u16,
}

/// Keeps the events [`timeline`] needs of the current (or last) program, cycle by cycle: the cycles where
/// a bit other than [`RUNNING`] is set and those where `RUNNING` changes, forgetting the previous program's
/// at each rise (so its memory is bounded by one program). The Verilator shim applies the same rule in C++.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    events: Vec<TraceEvent>,
    running: bool,
}

impl Recorder {
    /// Looks at the port's `bits` in `cycle` (call once per cycle, in order).
    pub fn record(&mut self, cycle: u64, bits: u16) {
        let running = bits & RUNNING != 0;
        if running && !self.running {
            self.events.clear();
        }
        if bits & !RUNNING != 0 || running != self.running {
            self.events.push(TraceEvent { cycle, bits });
        }
        self.running = running;
    }

    /// The events kept: those of the program running now or of the last one.
    pub fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    /// [`timeline`] of the events kept.
    pub fn timeline(&self) -> Result<Vec<Timing>, TraceError> {
        timeline(&self.events)
    }
}

/// Why a trace does not describe one completed program: the RTL broke the port's rules, or the program
/// did not complete (an error stopped it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction trace, cycle {cycle}: {message}")]
pub struct TraceError {
    /// The cycle (from `RUNNING`'s rise) where the trace stopped making sense.
    pub cycle: u64,
    /// What was wrong.
    pub message: String,
}

/// Rebuilds every instruction's [`Timing`] of the program whose `RUNNING` rise is the **last** in `events`
/// (so a simulator may keep everything since power-on). `events` are in cycle order and need only hold the
/// cycles where a bit other than `RUNNING` is set and the cycles where `RUNNING` changes (rises, and the
/// first cycle it is low again). Fails unless the program
/// ran to FINISH with every dispatched instruction started and ended, in the order the port's rules allow.
pub fn timeline(events: &[TraceEvent]) -> Result<Vec<Timing>, TraceError> {
    let first = events
        .iter()
        .enumerate()
        .rev()
        .find(|(i, e)| e.bits & RUNNING != 0 && (*i == 0 || events[i - 1].bits & RUNNING == 0))
        .map(|(i, _)| i)
        .ok_or_else(|| TraceError { cycle: 0, message: "no program started (RUNNING never rose)".into() })?;
    let origin = events[first].cycle;
    let mut times: Vec<(u64, Option<u64>, Option<u64>)> = Vec::new();
    let mut queued: [VecDeque<usize>; 3] = Default::default();
    let mut running: [Option<usize>; 3] = [None; 3];
    let mut finish: Option<usize> = None;
    for e in &events[first..] {
        let t = e.cycle - origin;
        let fail = |message: String| TraceError { cycle: t, message };
        if e.bits & DISPATCH != 0 {
            let pc = times.len();
            times.push((t, None, None));
            let stage = (e.bits >> DISPATCH_STAGE_LSB) & 0b111;
            match stage {
                0 if finish.is_none() => finish = Some(pc),
                0 => return Err(fail(format!("instruction {pc} is a second FINISH"))),
                1 | 2 | 4 => queued[stage.trailing_zeros() as usize].push_back(pc),
                _ => return Err(fail(format!("instruction {pc} dispatched to stages {stage:03b}"))),
            }
        }
        for s in 0..3 {
            let start = e.bits >> (START_LSB + s as u32) & 1 != 0;
            let mut end = e.bits >> (END_LSB + s as u32) & 1 != 0;
            // An instruction started earlier ends before the next one starts (never in the same cycle, but
            // an instruction of one cycle starts and ends in the same cycle).
            if end {
                if let Some(pc) = running[s].filter(|&pc| times[pc].1 != Some(t)) {
                    times[pc].2 = Some(t + 1);
                    running[s] = None;
                    end = false;
                }
            }
            if start {
                if let Some(pc) = running[s] {
                    return Err(fail(format!("stage {s} starts while instruction {pc} runs")));
                }
                let pc = queued[s].pop_front().ok_or_else(|| fail(format!("stage {s} starts with an empty queue")))?;
                times[pc].1 = Some(t);
                running[s] = Some(pc);
            }
            if end {
                let pc = running[s].take().ok_or_else(|| fail(format!("stage {s} ends with nothing running")))?;
                times[pc].2 = Some(t + 1);
            }
        }
        if e.bits & FINISH != 0 {
            let pc = finish.ok_or_else(|| fail("FINISH executes before it was dispatched".into()))?;
            times[pc].1 = Some(t);
            times[pc].2 = Some(t + 1);
            break;
        }
    }
    let last = events.last().map_or(0, |e| e.cycle - origin);
    times
        .iter()
        .enumerate()
        .map(|(pc, &(dispatch, start, end))| match (start, end) {
            (Some(start), Some(end)) => Ok(Timing { dispatch, start, end }),
            _ => Err(TraceError {
                cycle: last,
                message: format!("instruction {pc} never ended: the program did not complete"),
            }),
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|t| match finish {
            Some(pc) if pc + 1 == t.len() => Ok(t),
            _ => Err(TraceError { cycle: last, message: "the program did not reach FINISH".into() }),
        })
}

/// Compares a simulated engine's timeline with the golden model's: `Err` names the first instruction whose
/// dispatch, start or end differs (or the lengths), for a test's failure message.
pub fn compare(simulated: &[Timing], golden: &[Timing]) -> Result<(), String> {
    if let Some((pc, (s, g))) = simulated.iter().zip(golden).enumerate().find(|(_, (s, g))| s != g) {
        return Err(format!("instruction {pc}: simulated {s:?}, golden {g:?}"));
    }
    if simulated.len() != golden.len() {
        return Err(format!("{} instructions timed, golden {}", simulated.len(), golden.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(cycle: u64, bits: u16) -> TraceEvent {
        TraceEvent { cycle, bits }
    }

    const fn start(s: u32) -> u16 {
        1 << (START_LSB + s)
    }
    const fn end(s: u32) -> u16 {
        1 << (END_LSB + s)
    }
    const fn dispatch(s: u32) -> u16 {
        DISPATCH | 1 << (DISPATCH_STAGE_LSB + s)
    }

    /// LOAD (2 cycles, starts as dispatched), a one-cycle SYNC on compute, FINISH; a previous program's
    /// events are ignored.
    #[test]
    fn a_trace_rebuilds_dispatch_start_and_end_of_every_instruction() {
        let events = [
            ev(3, RUNNING),
            ev(4, RUNNING | dispatch(0) | start(0) | end(0)),
            ev(5, RUNNING | DISPATCH | FINISH),
            ev(6, 0),
            ev(10, RUNNING),
            ev(20, RUNNING | dispatch(0) | start(0)),
            ev(21, RUNNING | dispatch(1) | end(0)),
            ev(23, RUNNING | start(1) | end(1)),
            ev(24, RUNNING | DISPATCH),
            ev(25, RUNNING | FINISH),
            ev(26, 0),
        ];
        let t = timeline(&events).expect("a complete program");
        assert_eq!(
            t,
            vec![
                Timing { dispatch: 10, start: 10, end: 12 },
                Timing { dispatch: 11, start: 13, end: 14 },
                Timing { dispatch: 14, start: 15, end: 16 },
            ]
        );
    }

    #[test]
    fn the_recorder_keeps_the_last_program_and_only_the_cycles_that_matter() {
        let mut r = Recorder::default();
        let cycles =
            [0, RUNNING, RUNNING | dispatch(2) | start(2) | end(2), RUNNING, RUNNING | DISPATCH | FINISH, 0, 0];
        for (t, &bits) in cycles.iter().chain(&cycles).enumerate() {
            r.record(t as u64, bits);
        }
        assert_eq!(r.events().len(), 4, "rise, store, FINISH, fall: {:?}", r.events());
        assert_eq!(r.events()[0].cycle, 8);
        let t = r.timeline().expect("complete");
        assert_eq!(t, vec![Timing { dispatch: 1, start: 1, end: 2 }, Timing { dispatch: 3, start: 3, end: 4 }]);
    }

    #[test]
    fn comparing_names_the_first_differing_instruction() {
        let a = [Timing { dispatch: 1, start: 2, end: 3 }, Timing { dispatch: 2, start: 3, end: 9 }];
        let mut b = a;
        assert_eq!(compare(&a, &b), Ok(()));
        b[1].end = 8;
        assert!(compare(&a, &b).unwrap_err().starts_with("instruction 1:"));
        assert!(compare(&a, &a[..1]).unwrap_err().contains("2 instructions timed, golden 1"));
    }

    #[test]
    fn broken_or_unfinished_traces_are_errors() {
        assert!(timeline(&[]).is_err());
        let unfinished = [ev(0, RUNNING), ev(1, RUNNING | dispatch(2) | start(2))];
        assert!(timeline(&unfinished).unwrap_err().message.contains("never ended"));
        let empty_start = [ev(0, RUNNING), ev(1, RUNNING | start(1))];
        assert!(timeline(&empty_start).unwrap_err().message.contains("empty queue"));
        let stray_end = [ev(0, RUNNING), ev(1, RUNNING | end(2))];
        assert!(timeline(&stray_end).unwrap_err().message.contains("nothing running"));
        let early_finish = [ev(0, RUNNING), ev(1, RUNNING | FINISH)];
        assert!(timeline(&early_finish).unwrap_err().message.contains("before it was dispatched"));
    }
}
