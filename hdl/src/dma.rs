//! The engine's memory (DMA) port: the host interface an AXI / XDMA bridge adapts, and a software model of
//! host memory for test benches.
//!
//! # The protocol
//! The engine sees host memory through **channels**, each a simple handshake with no back-pressure. A
//! configuration's `B = dma_bytes_per_cycle` sets the data width: a **beat** is `B` bytes, carried as
//! `Bits<{8·B}>` with byte `i` at bits `8i + 7 .. 8i`. Addresses are byte IOVAs (`Bits<64>`): the engine adds
//! the `DMA_BASE` register to the DMA-window offsets of its instructions, and checks every access against
//! `DMA_SIZE` itself (a request never leaves the window; an access that would is reported as
//! `DmaOutOfBounds` instead of being issued).
//!
//! Instruction fetch and the LOAD stage each have a **read channel**; the STORE stage has a **write channel**
//! ([`DmaReadPort`], [`DmaWritePort`]; signal names below are the ports' fields).
//!
//! ## Read channel
//! * **Request**: in any cycle the engine may assert `rd_req_valid` with `rd_req_addr` (first byte) and
//!   `rd_req_len` (bytes, `≥ 1`). Every request is accepted in the cycle it is made (there is no ready).
//! * **Data**: the bridge returns each request as `⌈len / B⌉` beats on `rd_beat_valid` / `rd_beat_data`, in
//!   request order. A request made in cycle `t` has its first beat in cycle `max(t + L, f)`, where `L =
//!   dma_latency` and `f` is the cycle after the previous request's last beat; its beats are consecutive (one
//!   per cycle, never stalled). So a channel kept busy streams one beat per cycle, `L` cycles behind its
//!   requests.
//! * **Packing**: the first beat of a request carries byte `addr` in byte 0, the next beat byte `addr + B`,
//!   and so on, whatever the alignment of `addr` (the bridge realigns). Bytes of the last beat past `len` are
//!   unspecified (the engine ignores them).
//!
//! ## Write channel
//! * In any cycle the engine may assert `wr_valid` with `wr_addr`, `wr_len` (`1 ..= B` bytes) and `wr_data`:
//!   bytes `0 .. len` of `wr_data` are written to `addr .. addr + len` (again any alignment). Writes are
//!   accepted every cycle and applied in order.
//! * The engine's cycle model charges each STORE the write-acknowledge latency `L` once: a STORE's stage is
//!   busy `L` cycles beyond its last write beat. The engine does not look at acknowledgements (writes cannot
//!   fail inside the window); a bridge must therefore make its writes visible to later reads of the engine
//!   (fetch, LOAD) and to the host within `L` cycles of the beat, or in order with them.
//!
//! ## Reset and errors
//! After a unit stops on an error, beats of requests it had already made still arrive; units ignore beats
//! while idle, and the engine stops on any error until `CTRL.RESET`, so a bridge must discard the beats
//! still in flight when the engine is reset.
//!
//! # Test benches
//! [`HostMemory`] is a byte array at an IOVA base (the DMA window and, if wanted, memory around it).
//! [`ReadChannel`] and [`WriteChannel`] serve one channel each exactly by the rules above. Each simulated
//! cycle: [`ReadChannel::drive`] sets the beat inputs of the cycle, the test settles the circuit, then
//! [`ReadChannel::sample`] / [`WriteChannel::sample`] read the request and write outputs of the same cycle,
//! and the clock ticks. Protocol violations (an access outside the memory, a zero-length request, a write
//! longer than a beat) are recorded in [`HostMemory::faults`] for the test to assert on.

use std::collections::VecDeque;

use rust_hdl::prelude::*;

/// One channel's view of the engine's read port (the engine drives the requests, the bridge the beats).
/// `W` is the beat width in bits, `8 · dma_bytes_per_cycle`.
#[derive(LogicInterface, Default)]
pub struct DmaReadPort<const W: usize> {
    /// A request is made this cycle.
    pub rd_req_valid: Signal<Out, Bit>,
    /// IOVA of the request's first byte.
    pub rd_req_addr: Signal<Out, Bits<64>>,
    /// Bytes requested (at least 1).
    pub rd_req_len: Signal<Out, Bits<32>>,
    /// A beat arrives this cycle.
    pub rd_beat_valid: Signal<In, Bit>,
    /// The beat: byte `i` at bits `8i + 7 .. 8i`.
    pub rd_beat_data: Signal<In, Bits<W>>,
}

/// The engine's write port (driven entirely by the engine). `W` is the beat width in bits.
#[derive(LogicInterface, Default)]
pub struct DmaWritePort<const W: usize> {
    /// A write beat is issued this cycle.
    pub wr_valid: Signal<Out, Bit>,
    /// IOVA of the first byte written.
    pub wr_addr: Signal<Out, Bits<64>>,
    /// Bytes written, `1 ..= B`.
    pub wr_len: Signal<Out, Bits<32>>,
    /// The bytes: byte `i` at bits `8i + 7 .. 8i`.
    pub wr_data: Signal<Out, Bits<W>>,
}

/// Packs up to `W / 8` bytes into a beat (byte `i` at bits `8i + 7 .. 8i`; missing bytes are zero).
pub fn bytes_to_beat<const W: usize>(bytes: &[u8]) -> Bits<W> {
    assert!(bytes.len() * 8 <= W, "{} bytes do not fit a {W}-bit beat", bytes.len());
    let mut beat = Bits::<W>::default();
    for (i, &b) in bytes.iter().enumerate() {
        beat.set_bits::<8>(8 * i, (b as LiteralType).into());
    }
    beat
}

/// The `W / 8` bytes of a beat.
pub fn beat_to_bytes<const W: usize>(beat: Bits<W>) -> Vec<u8> {
    (0..W / 8).map(|i| beat.get_bits::<8>(8 * i).to_u8()).collect()
}

/// Host memory as the engine's bridge sees it: `bytes` at IOVAs `iova_base ..`.
#[derive(Clone, Debug, Default)]
pub struct HostMemory {
    /// IOVA of `bytes[0]`.
    pub iova_base: u64,
    /// The memory's contents.
    pub bytes: Vec<u8>,
    /// Protocol violations seen so far, one message each (a correct engine leaves this empty).
    pub faults: Vec<String>,
}

impl HostMemory {
    /// Memory holding `bytes` at `iova_base`.
    pub fn new(iova_base: u64, bytes: Vec<u8>) -> Self {
        HostMemory { iova_base, bytes, faults: Vec::new() }
    }

    fn range(&self, iova: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(iova.checked_sub(self.iova_base)?).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.bytes.len()).then_some(start..end)
    }

    /// The `len` bytes at `iova`; out-of-range bytes read as zero and are recorded as a fault.
    pub fn read(&mut self, iova: u64, len: usize) -> Vec<u8> {
        match self.range(iova, len) {
            Some(r) => self.bytes[r].to_vec(),
            None => {
                self.faults.push(format!("read of {len} bytes at IOVA {iova:#x} outside host memory"));
                vec![0; len]
            }
        }
    }

    /// Writes `data` at `iova`; an out-of-range write is dropped and recorded as a fault.
    pub fn write(&mut self, iova: u64, data: &[u8]) {
        match self.range(iova, data.len()) {
            Some(r) => self.bytes[r].copy_from_slice(data),
            None => self.faults.push(format!("write of {} bytes at IOVA {iova:#x} outside host memory", data.len())),
        }
    }
}

/// One read request as the bridge saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    /// Cycle of the request (counted by the channel from its creation).
    pub cycle: u64,
    /// IOVA of the first byte.
    pub addr: u64,
    /// Bytes.
    pub len: u64,
    /// Cycle of its first beat.
    pub first_beat: u64,
}

/// A bridge's read channel: turns requests into beats with latency `L`, `B` bytes per beat, back to back
/// (see the module documentation). `W = 8·B`.
#[derive(Clone, Debug)]
pub struct ReadChannel<const W: usize> {
    latency: u64,
    cycle: u64,
    next_free: u64,
    beats: VecDeque<(u64, Bits<W>)>,
    /// Every request served so far, in order.
    pub requests: Vec<ReadRequest>,
}

impl<const W: usize> ReadChannel<W> {
    /// A channel with latency `latency` (the configuration's `dma_latency`) and `W / 8` bytes per beat.
    pub fn new(latency: u32) -> Self {
        ReadChannel { latency: latency as u64, cycle: 0, next_free: 0, beats: VecDeque::new(), requests: Vec::new() }
    }

    /// The channel's current cycle (cycles sampled so far).
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    /// Beats still to be delivered.
    pub fn pending_beats(&self) -> usize {
        self.beats.len()
    }

    /// The beat of the current cycle, if any.
    pub fn beat(&self) -> Option<Bits<W>> {
        self.beats.front().filter(|(c, _)| *c == self.cycle).map(|(_, b)| *b)
    }

    /// Sets the port's beat inputs for the current cycle (call before settling the circuit).
    pub fn drive(&self, port: &mut DmaReadPort<W>) {
        let beat = self.beat();
        port.rd_beat_valid.next = beat.is_some();
        port.rd_beat_data.next = beat.unwrap_or_default();
    }

    /// Takes the request the engine makes in the current cycle (`rd_req_*` outputs after settling), reading
    /// its bytes from `mem` now, then ends the cycle.
    pub fn sample(&mut self, mem: &mut HostMemory, port: &DmaReadPort<W>) {
        let req = port.rd_req_valid.val().then(|| (port.rd_req_addr.val().to_u64(), port.rd_req_len.val().to_u64()));
        self.request(mem, req);
    }

    /// [`Self::sample`] for a request given directly: `Some((iova, len))` or `None`.
    pub fn request(&mut self, mem: &mut HostMemory, req: Option<(u64, u64)>) {
        if self.beat().is_some() {
            self.beats.pop_front();
        }
        if let Some((addr, len)) = req {
            let bytes_per_beat = W / 8;
            if len == 0 {
                mem.faults.push(format!("zero-length read request at IOVA {addr:#x} in cycle {}", self.cycle));
            }
            let data = mem.read(addr, len as usize);
            let first = (self.cycle + self.latency).max(self.next_free);
            for (i, chunk) in data.chunks(bytes_per_beat).enumerate() {
                self.beats.push_back((first + i as u64, bytes_to_beat::<W>(chunk)));
            }
            self.next_free = first + data.len().div_ceil(bytes_per_beat) as u64;
            self.requests.push(ReadRequest { cycle: self.cycle, addr, len, first_beat: first });
        }
        self.cycle += 1;
    }
}

/// One write beat as the bridge saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteBeat {
    /// Cycle of the beat.
    pub cycle: u64,
    /// IOVA of the first byte.
    pub addr: u64,
    /// The bytes written.
    pub data: Vec<u8>,
}

/// A bridge's write channel: applies each write beat to [`HostMemory`] in the cycle it is issued.
#[derive(Clone, Debug, Default)]
pub struct WriteChannel<const W: usize> {
    cycle: u64,
    /// Every write beat so far, in order.
    pub writes: Vec<WriteBeat>,
}

impl<const W: usize> WriteChannel<W> {
    /// An idle channel.
    pub fn new() -> Self {
        WriteChannel { cycle: 0, writes: Vec::new() }
    }

    /// Applies the write the engine issues in the current cycle (`wr_*` outputs after settling), then ends
    /// the cycle.
    pub fn sample(&mut self, mem: &mut HostMemory, port: &DmaWritePort<W>) {
        if port.wr_valid.val() {
            let addr = port.wr_addr.val().to_u64();
            let len = port.wr_len.val().to_u64() as usize;
            if len == 0 || len > W / 8 {
                mem.faults.push(format!("write beat of {len} bytes (1..={} allowed) in cycle {}", W / 8, self.cycle));
            }
            let data = beat_to_bytes(port.wr_data.val())[..len.min(W / 8)].to_vec();
            mem.write(addr, &data);
            self.writes.push(WriteBeat { cycle: self.cycle, addr, data });
        }
        self.cycle += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_round_trip_bytes() {
        let bytes: Vec<u8> = (0..16).map(|i| i * 17).collect();
        assert_eq!(beat_to_bytes(bytes_to_beat::<128>(&bytes)), bytes);
        let beat = bytes_to_beat::<512>(&bytes[..5]);
        assert_eq!(beat.get_bits::<8>(8 * 4).to_u8(), 68);
        assert_eq!(beat.get_bits::<8>(8 * 5).to_u8(), 0);
    }

    #[test]
    fn read_channel_follows_the_protocol() {
        let mut mem = HostMemory::new(0x1000, (0..=255).collect());
        let mut ch = ReadChannel::<32>::new(3);
        // Cycle 0: 6 bytes at an unaligned address (2 beats); cycle 1: 1 byte (1 beat, after the first two).
        ch.request(&mut mem, Some((0x1001, 6)));
        ch.request(&mut mem, Some((0x1010, 1)));
        let mut seen = Vec::new();
        for _ in 2..10 {
            if let Some(b) = ch.beat() {
                seen.push((ch.cycle(), beat_to_bytes(b)));
            }
            ch.request(&mut mem, None);
        }
        assert_eq!(seen, vec![(3, vec![1, 2, 3, 4]), (4, vec![5, 6, 0, 0]), (5, vec![16, 0, 0, 0])]);
        assert!(mem.faults.is_empty());
        // A late request waits only for the latency.
        ch.request(&mut mem, Some((0x1000, 4)));
        assert_eq!(ch.requests.last().unwrap().first_beat, 13);
        mem.read(0x2000, 1);
        assert_eq!(mem.faults.len(), 1);
    }
}
