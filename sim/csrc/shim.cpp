// The C ABI around one verilated systole engine, with the bridge models of its three memory channels.
//
// build.rs instantiates this file once per model, replacing @PREFIX@ (the Verilator --prefix), @NAME@ (the
// C symbol prefix), @WORDS@ (32-bit words per memory beat), @THREADS@ (the model's --threads) and @TRACE@ (1
// when verilated with --trace: VCD waveforms of a window of cycles, one cycle = 2 time units, the rising
// edge at the odd one). The channel models follow the memory-port
// protocol of docs/hardware.md ("The memory port") exactly as hdl::dma::ReadChannel and WriteChannel do in
// the rust-hdl test benches: a read request made in cycle t has its first beat in max(t + L, f), f being the
// cycle after the previous request's last beat, its bytes read from host memory at the request; a write beat
// is applied in the cycle it is issued. One call runs many cycles (run), so the FFI cost is per program,
// not per cycle.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "verilated.h"
#include "@PREFIX@.h"

#define SYSTOLE_TRACE @TRACE@
#if SYSTOLE_TRACE
#include "verilated_vcd_c.h"
#endif

namespace {

constexpr int kWords = @WORDS@;
constexpr uint64_t kBytes = kWords * 4;

struct Beat {
    uint64_t cycle;
    uint32_t words[kWords];
};

struct Channel {
    std::deque<Beat> beats;
    uint64_t next_free = 0;
};

struct Sim {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<@PREFIX@> model;
    uint64_t cycle = 0;
    uint64_t latency = 0;
    Channel fetch;
    Channel load;
    uint8_t* memory = nullptr;
    uint64_t memory_len = 0;
    uint64_t iova_base = 0;
    uint64_t faults = 0;
    // The instruction-trace port's events of the current or last program (arch::trace::Recorder's rule):
    // cycle << 16 | bits, for the cycles where a bit other than RUNNING is set or RUNNING changes.
    std::vector<uint64_t> events;
    bool running = false;
#if SYSTOLE_TRACE
    std::unique_ptr<VerilatedVcdC> vcd;
    bool tracing = false;
    uint64_t trace_from = 0;
    uint64_t trace_to = 0;
#endif
};

// Writes the waveform at time `t` when the current cycle is inside the traced window; closes the file at its end.
void dump(Sim* s, uint64_t t) {
#if SYSTOLE_TRACE
    if (!s->tracing) return;
    if (s->cycle >= s->trace_to) {
        s->vcd->close();
        s->tracing = false;
        return;
    }
    if (s->cycle >= s->trace_from) s->vcd->dump(t);
#else
    (void)s;
    (void)t;
#endif
}

// Host memory bytes [iova, iova + len) into `out`; out-of-range reads count a fault and read zeros.
void read_memory(Sim* s, uint64_t iova, uint64_t len, std::vector<uint8_t>& out) {
    out.assign(len, 0);
    const uint64_t off = iova - s->iova_base;
    if (iova < s->iova_base || off > s->memory_len || len > s->memory_len - off) {
        s->faults++;
        return;
    }
    std::memcpy(out.data(), s->memory + off, len);
}

void request(Sim* s, Channel& ch, uint64_t iova, uint64_t len) {
    if (len == 0) s->faults++;
    std::vector<uint8_t> data;
    read_memory(s, iova, len, data);
    const uint64_t first = std::max(s->cycle + s->latency, ch.next_free);
    const uint64_t n = (len + kBytes - 1) / kBytes;
    for (uint64_t i = 0; i < n; i++) {
        Beat b;
        b.cycle = first + i;
        uint8_t bytes[kBytes] = {0};
        const uint64_t lo = i * kBytes;
        std::memcpy(bytes, data.data() + lo, std::min(kBytes, len - lo));
        for (int w = 0; w < kWords; w++) {
            b.words[w] = uint32_t(bytes[4 * w]) | uint32_t(bytes[4 * w + 1]) << 8 |
                         uint32_t(bytes[4 * w + 2]) << 16 | uint32_t(bytes[4 * w + 3]) << 24;
        }
        ch.beats.push_back(b);
    }
    ch.next_free = first + n;
}

template <typename Valid, typename Data>
void drive(Sim* s, Channel& ch, Valid& valid, Data& data) {
    const bool now = !ch.beats.empty() && ch.beats.front().cycle == s->cycle;
    valid = now;
    for (int w = 0; w < kWords; w++) data[w] = now ? ch.beats.front().words[w] : 0;
}

void retire(Sim* s, Channel& ch) {
    if (!ch.beats.empty() && ch.beats.front().cycle == s->cycle) ch.beats.pop_front();
}

void write_beat(Sim* s) {
    auto* m = s->model.get();
    const uint64_t iova = m->store_dma__024wr_addr;
    const uint64_t len = m->store_dma__024wr_len;
    if (len == 0 || len > kBytes) {
        s->faults++;
        return;
    }
    const uint64_t off = iova - s->iova_base;
    if (iova < s->iova_base || off > s->memory_len || len > s->memory_len - off) {
        s->faults++;
        return;
    }
    for (uint64_t i = 0; i < len; i++) {
        s->memory[off + i] = uint8_t(m->store_dma__024wr_data[i / 4] >> (8 * (i % 4)));
    }
}

// One clock cycle: this cycle's beats in, settle, take requests and writes, rising edge.
void step(Sim* s) {
    auto* m = s->model.get();
    drive(s, s->fetch, m->fetch__024rd_beat_valid, m->fetch__024rd_beat_data);
    drive(s, s->load, m->load_dma__024rd_beat_valid, m->load_dma__024rd_beat_data);
    m->clock = 0;
    m->eval();
    dump(s, 2 * s->cycle);
    const uint16_t bits = m->inst_trace;
    const bool running = bits & 1;
    if (running && !s->running) s->events.clear();
    if ((bits & ~1) != 0 || running != s->running) s->events.push_back(s->cycle << 16 | bits);
    s->running = running;
    if (m->fetch__024rd_req_valid) request(s, s->fetch, m->fetch__024rd_req_addr, m->fetch__024rd_req_len);
    if (m->load_dma__024rd_req_valid) request(s, s->load, m->load_dma__024rd_req_addr, m->load_dma__024rd_req_len);
    if (m->store_dma__024wr_valid) write_beat(s);
    retire(s, s->fetch);
    retire(s, s->load);
    m->clock = 1;
    m->eval();
    dump(s, 2 * s->cycle + 1);
    s->cycle++;
}

}  // namespace

extern "C" {

void* @NAME@_new(uint32_t latency) {
    auto* s = new Sim;
    s->context = std::make_unique<VerilatedContext>();
    s->context->threads(@THREADS@);
#if SYSTOLE_TRACE
    s->context->traceEverOn(true);
#endif
    s->model = std::make_unique<@PREFIX@>(s->context.get(), "engine");
#if SYSTOLE_TRACE
    s->vcd = std::make_unique<VerilatedVcdC>();
    s->model->trace(s->vcd.get(), 99);
#endif
    s->latency = latency;
    // Power-on reset for one cycle.
    s->model->reset = 1;
    step(s);
    s->model->reset = 0;
    return s;
}

void @NAME@_delete(void* p) {
    auto* s = static_cast<Sim*>(p);
#if SYSTOLE_TRACE
    if (s->tracing) s->vcd->close();
#endif
    s->model->final();
    delete s;
}

void @NAME@_set_memory(void* p, uint8_t* bytes, uint64_t len, uint64_t iova_base) {
    auto* s = static_cast<Sim*>(p);
    s->memory = bytes;
    s->memory_len = len;
    s->iova_base = iova_base;
}

void @NAME@_bar_write(void* p, uint32_t offset, uint32_t value) {
    auto* s = static_cast<Sim*>(p);
    auto* m = s->model.get();
    m->bar__024wr_en = 1;
    m->bar__024wr_addr = offset;
    m->bar__024wr_data = value;
    step(s);
    m->bar__024wr_en = 0;
}

uint32_t @NAME@_bar_read(void* p, uint32_t offset) {
    auto* s = static_cast<Sim*>(p);
    auto* m = s->model.get();
    m->bar__024rd_en = 1;
    m->bar__024rd_addr = offset;
    step(s);
    m->bar__024rd_en = 0;
    return m->bar__024rd_data;
}

// Runs until the interrupt line is high after a cycle, or `max_cycles` cycles; returns the cycles run.
uint64_t @NAME@_run(void* p, uint64_t max_cycles) {
    auto* s = static_cast<Sim*>(p);
    uint64_t n = 0;
    while (n < max_cycles && !s->model->irq) {
        step(s);
        n++;
    }
    return n;
}

uint8_t @NAME@_irq(void* p) { return static_cast<Sim*>(p)->model->irq; }

uint64_t @NAME@_cycle(void* p) { return static_cast<Sim*>(p)->cycle; }

uint64_t @NAME@_faults(void* p) { return static_cast<Sim*>(p)->faults; }

// Copies up to `capacity` instruction-trace events (cycle << 16 | bits) into `out`; returns how many there are.
uint64_t @NAME@_instruction_events(void* p, uint64_t* out, uint64_t capacity) {
    auto* s = static_cast<Sim*>(p);
    const uint64_t n = s->events.size();
    if (out != nullptr) std::memcpy(out, s->events.data(), std::min(n, capacity) * sizeof(uint64_t));
    return n;
}

// Starts a VCD waveform of cycles [from, to) in `path` (replacing a trace in progress). Returns 0, -1 when the
// model was built without tracing, -2 when the file cannot be opened.
int32_t @NAME@_trace(void* p, const char* path, uint64_t from, uint64_t to) {
#if SYSTOLE_TRACE
    auto* s = static_cast<Sim*>(p);
    if (s->tracing) s->vcd->close();
    s->tracing = false;
    s->vcd->open(path);
    if (!s->vcd->isOpen()) return -2;
    s->tracing = true;
    s->trace_from = from;
    s->trace_to = to;
    return 0;
#else
    (void)p;
    (void)path;
    (void)from;
    (void)to;
    return -1;
#endif
}

}  // extern "C"
