// systole_axi_bridge.v -- hand-written glue between the exported systole engine and AXI (XDMA / DDR).
//
// Not generated. Written for the Alveo U250 top (systole_u250_top.v); lint-checked with Verilator only
// (see ../README.md: never synthesised, simulated or run on hardware here).
//
// Two halves:
//   * systole_axil_bar:  AXI4-Lite slave (32-bit) -> engine BarPort (hdl/src/regfile.rs: 12-bit byte
//     offsets, 32-bit data, read data the cycle after rd_en). It also snoops writes of CTRL.RESET
//     (offset 0x020, bit 0; arch/src/regs.rs) so the DMA half can discard in-flight read beats, and
//     serves a bridge status word at offset 0x1000 (reachable only if BAR0 is 8 KiB, see README).
//   * systole_dma_axi:   the engine's three memory channels (hdl/src/dma.rs) -> one AXI4 master, 512-bit.
//
// THE READ-TIMING CONTRACT (hdl/src/dma.rs): a read request made in cycle t gets its first beat in cycle
// max(t + L, f) exactly (f = cycle after the channel's previous request's last beat), beats consecutive, no
// valid/ready. The LOAD unit does not even look at rd_beat_valid: it consumes beats on a fixed schedule
// L cycles behind its requests. So this bridge is a FIXED-LATENCY PLAYOUT: it timestamps each request,
// computes s = max(t + L, f) when the request is made, fetches the data over AXI as early as it can,
// realigns it and holds it until cycle s, then plays it out one beat per cycle. Parameter L MUST equal
// the exported engine's dma_latency (16x16 preset: 64). If AXI data has not arrived by its slot, the beat
// goes out late (the protocol is then violated: LOAD data is corrupt) and a sticky LATE status bit is set.
// The bridge therefore adds no latency beyond L when the memory answers within about L - 4 cycles;
// it cannot make a slower memory look faster. Host memory over PCIe answers in ~1-2 us (250-500 cycles
// at 250 MHz), so with L = 64 reads from HOST memory will be late: see README ("Latency") for the options
// (export with a larger dma_latency, run from card DDR, lower clock).
//
// Reads: per channel a request FIFO -> AR splitter (64-byte aligned lines, bursts never cross 4 KiB,
// <= 64 beats) -> shared AR (ARID = channel) -> R routed by RID into a per-channel data FIFO (credit-
// based: a burst is issued only if the data FIFO has room for it, so RREADY is always 1) -> realigner
// ({next, this} >> 8*addr[5:0]) -> output FIFO -> timed playout. Throughput limit: an unaligned request
// spends one extra cycle loading its first line, so single-beat unaligned requests realign at 1/2 beat per
// cycle (aligned ones at 1); unaligned reads also fetch one extra line.
// Writes: per engine beat (addr, len 1..64, data) a FIFO entry; each becomes one or two single-beat AXI
// writes (AWLEN 0, 64 bytes, WSTRB marks the bytes) -- two when it straddles a 64-byte line, so unaligned
// stores use twice the AXI write beats. No back-pressure to the engine exists: a full FIFO drops the write
// and sets a sticky OVERFLOW bit.
// Ordering: a read request is not issued on AR until every write the engine made before it has its BRESP
// (so LOAD/fetch see earlier STOREs), and wr_idle (FIFO empty, all BRESPs in) lets the top hold the
// interrupt back until the STORE data has left the bridge.
// Reset: `rst` (from axi_aresetn) clears everything. A CTRL.RESET write (`flush`) clears the read
// channels' queues and drops the R beats still in flight (hdl/src/dma.rs, "Reset and errors"); queued
// writes are still performed.
// Status bits (sticky, cleared by rst or by writing 1s at BAR offset 0x1000):
//   0 fetch late, 1 load late, 2 fetch request FIFO overflow, 3 load request FIFO overflow,
//   4 write FIFO overflow, 5 AXI error response (RRESP/BRESP != OKAY), 6 oversized write (len 0 or > 64).

`default_nettype none
// Several small modules share this file, and unused FIFO outputs (count, full) are left unconnected.
/* verilator lint_off DECLFILENAME */
/* verilator lint_off PINCONNECTEMPTY */

// ---------------------------------------------------------------------------------------------------------
// Synchronous first-word-fall-through FIFO. Memory read is synchronous (infers block RAM when large); the
// head sits in an output register. `count` includes the head.
// ---------------------------------------------------------------------------------------------------------
module systole_fifo #(
    parameter integer W = 8,
    parameter integer LOG2 = 4
) (
    input  wire clk,
    input  wire clr,            // synchronous clear
    input  wire push,
    input  wire [W-1:0] din,
    output wire full,
    input  wire pop,            // only while valid
    output reg  [W-1:0] dout,
    output reg  valid,
    output wire [LOG2:0] count
);
    reg [W-1:0] mem [0:(1<<LOG2)-1];
    reg [LOG2-1:0] wa, ra;
    reg [LOG2:0] n;             // entries in mem (not counting the head register)
    wire load = (n != 0) && (!valid || pop);
    // one slot is kept for the head register: mem never holds more than 2^LOG2 - 1
    assign full  = (n + {{LOG2{1'b0}}, valid}) >= (1 << LOG2);
    assign count = n + {{LOG2{1'b0}}, valid};
    always @(posedge clk) begin
        if (push && !full) mem[wa] <= din;
        if (load) dout <= mem[ra];
    end
    always @(posedge clk) begin
        if (clr) begin
            wa <= 0; ra <= 0; n <= 0; valid <= 1'b0;
        end else begin
            if (push && !full) wa <= wa + 1'b1;
            if (load) ra <= ra + 1'b1;
            n <= n + {{LOG2{1'b0}}, push && !full} - {{LOG2{1'b0}}, load};
            if (load) valid <= 1'b1;
            else if (pop) valid <= 1'b0;
        end
    end
endmodule

// ---------------------------------------------------------------------------------------------------------
// AXI4-Lite slave -> BarPort. One transaction at a time; 32-bit data. Byte strobes are ignored (a partial
// write writes the whole word: the driver only does 32-bit accesses). Writes to any offset with bit 12
// set go to the bridge status word instead of the engine.
// ---------------------------------------------------------------------------------------------------------
module systole_axil_bar (
    input  wire clk,
    input  wire rst,
    // AXI4-Lite slave
    input  wire [12:0] s_awaddr,
    input  wire        s_awvalid,
    output reg         s_awready,
    input  wire [31:0] s_wdata,
    input  wire [3:0]  s_wstrb,
    input  wire        s_wvalid,
    output reg         s_wready,
    output reg  [1:0]  s_bresp,
    output reg         s_bvalid,
    input  wire        s_bready,
    input  wire [12:0] s_araddr,
    input  wire        s_arvalid,
    output reg         s_arready,
    output reg  [31:0] s_rdata,
    output reg  [1:0]  s_rresp,
    output reg         s_rvalid,
    input  wire        s_rready,
    // engine BAR0
    output reg         bar_wr_en,
    output reg  [11:0] bar_wr_addr,
    output reg  [31:0] bar_wr_data,
    output reg         bar_rd_en,
    output reg  [11:0] bar_rd_addr,
    input  wire [31:0] bar_rd_data,
    // bridge side
    output reg         flush,          // CTRL.RESET written (one cycle, with the BAR write)
    input  wire [31:0] status,         // bridge status word (offset 0x1000)
    output reg  [31:0] status_clear    // ones written to 0x1000
);
    localparam [11:0] CTRL = 12'h020;
    reg rd_wait;        // rd_en issued last cycle: capture rd_data now
    reg rd_status;      // the pending read is of the status word
    reg [31:0] status_q;

    wire wr_go = s_awvalid && s_wvalid && !s_bvalid && !s_awready;
    wire rd_go = s_arvalid && !s_rvalid && !rd_wait && !s_arready;

    always @(posedge clk) begin
        bar_wr_en <= 1'b0;
        bar_rd_en <= 1'b0;
        flush <= 1'b0;
        status_clear <= 32'd0;
        s_awready <= 1'b0;
        s_wready <= 1'b0;
        s_arready <= 1'b0;
        if (rst) begin
            s_bvalid <= 1'b0;
            s_rvalid <= 1'b0;
            rd_wait <= 1'b0;
            rd_status <= 1'b0;
            s_bresp <= 2'b00;
            s_rresp <= 2'b00;
        end else begin
            // write: take AW and W together, one BAR write strobe
            if (wr_go) begin
                s_awready <= 1'b1;
                s_wready <= 1'b1;
                s_bvalid <= 1'b1;
                s_bresp <= 2'b00;
                if (s_awaddr[12]) begin
                    status_clear <= s_wdata;
                end else begin
                    bar_wr_en <= 1'b1;
                    flush <= ({s_awaddr[11:2], 2'b00} == CTRL) && s_wdata[0];
                end
            end
            if (s_bvalid && s_bready) s_bvalid <= 1'b0;
            // read: strobe rd_en, data the next cycle
            if (rd_go) begin
                s_arready <= 1'b1;
                rd_wait <= 1'b1;
                rd_status <= s_araddr[12];
                bar_rd_en <= !s_araddr[12];
            end
            if (rd_wait) begin
                rd_wait <= 1'b0;
                s_rvalid <= 1'b1;
                s_rresp <= 2'b00;
            end
            if (s_rvalid && s_rready) s_rvalid <= 1'b0;
        end
        bar_wr_addr <= {s_awaddr[11:2], 2'b00};
        bar_wr_data <= s_wdata;
        bar_rd_addr <= {s_araddr[11:2], 2'b00};
        status_q <= status;
        if (rd_wait) s_rdata <= rd_status ? status_q : bar_rd_data;
    end

    wire unused_ok = &{1'b0, s_wstrb, s_awaddr[1:0], s_araddr[1:0]};
endmodule

// ---------------------------------------------------------------------------------------------------------
// One engine read channel: schedule, AR candidates, data FIFO, realigner, timed playout.
// ---------------------------------------------------------------------------------------------------------
module systole_rd_chan #(
    parameter integer L = 64,              // engine dma_latency (cycles); >= 4
    parameter integer REQ_LOG2 = 10,       // request FIFOs: 2^REQ_LOG2 - 1 requests
    parameter integer DATA_LOG2 = 11,      // aligned-beat FIFO: 2^DATA_LOG2 - 1 beats
    parameter integer OUT_LOG2 = 5
) (
    input  wire clk,
    input  wire rst,                        // rst or flush
    input  wire [31:0] now,                 // free-running cycle counter
    // engine request
    input  wire        req_valid,
    input  wire [63:0] req_addr,
    input  wire [31:0] req_len,
    // engine beats
    output reg         beat_valid,
    output reg  [511:0] beat_data,
    // write barrier: AR waits until wr_b_cnt has reached the value recorded with the request
    input  wire [31:0] wr_enq_cnt,
    input  wire [31:0] wr_b_cnt,
    // AR candidate (one burst) and its acceptance
    output wire        ar_cand,
    output wire [63:0] ar_cand_addr,
    output wire [7:0]  ar_cand_len,         // AXI ARLEN (beats - 1)
    input  wire        ar_take,
    // R beats of this channel (RREADY is always 1: credit guarantees room)
    input  wire        r_valid,
    input  wire [511:0] r_data,
    input  wire        drop,                // discard R beats (after flush)
    output reg  [31:0] inflight,            // beats requested on AR, not yet received (incl. dropped)
    output reg         late,                // pulse: a beat went out after its slot
    output wire        overflow             // pulse: a request was lost (request FIFO full)
);
    // ---- schedule at request time: s = max(now + L, next_free)
    reg [31:0] next_free;
    wire [31:0] t_l = now + L;
    wire [31:0] s = ($signed(next_free - t_l) > 0) ? next_free : t_l;
    wire [31:0] nb_out = (req_len + 32'd63) >> 6;
    wire [5:0]  off = req_addr[5:0];
    wire [32:0] span = {1'b0, req_len} + {27'd0, off} + 33'd63;
    wire [31:0] nb_al = {5'd0, span[32:6]};
    wire [63:0] line = {req_addr[63:6], 6'd0};

    wire cmd_full, play_full, ral_full;
    wire any_full = cmd_full | play_full | ral_full;
    wire take_req = req_valid && !any_full;
    assign overflow = req_valid && any_full;

    always @(posedge clk) begin
        if (rst) next_free <= now;
        else if (take_req) next_free <= s + nb_out;
    end

    // ---- AR command FIFO: {line, nb_al, barrier}
    wire [127:0] cmd_q;
    wire cmd_v;
    wire cmd_pop;
    systole_fifo #(.W(128), .LOG2(REQ_LOG2)) u_cmd (
        .clk(clk), .clr(rst), .push(take_req), .din({line, nb_al, wr_enq_cnt}), .full(cmd_full),
        .pop(cmd_pop), .dout(cmd_q), .valid(cmd_v), .count());

    // splitter: current address / beats left of the head command
    reg        sp_act;
    reg [63:0] sp_addr;
    reg [31:0] sp_left;
    wire [6:0] to_4k = 7'd64 - {1'b0, sp_addr[11:6]};                  // lines to the 4 KiB boundary
    wire [31:0] burst = (sp_left < {25'd0, to_4k}) ? sp_left : {25'd0, to_4k};
    wire [DATA_LOG2:0] dcount;
    wire [32:0] room = (33'd1 << DATA_LOG2) - 33'd1 - {1'b0, inflight} - {{(32-DATA_LOG2){1'b0}}, dcount};
    wire [31:0] bar_diff = wr_b_cnt - cmd_q[31:0];
    wire barrier_ok = !bar_diff[31];                                    // wr_b_cnt >= barrier (mod 2^32)
    assign ar_cand = sp_act && !drop && ($signed(room) >= $signed({1'b0, burst}));
    assign ar_cand_addr = sp_addr;
    assign ar_cand_len = burst[7:0] - 8'd1;

    // the next command starts in the cycle the current one's last burst is taken (or when idle)
    wire sp_last = ar_take && (sp_left == burst);
    assign cmd_pop = !rst && cmd_v && barrier_ok && (!sp_act || sp_last);
    always @(posedge clk) begin
        if (rst) begin
            sp_act <= 1'b0;
        end else if (cmd_pop) begin
            sp_act <= 1'b1;
            sp_addr <= cmd_q[127:64];
            sp_left <= cmd_q[63:32];
        end else if (ar_take) begin
            sp_addr <= sp_addr + {25'd0, burst, 6'd0};
            sp_left <= sp_left - burst;
            if (sp_last) sp_act <= 1'b0;
        end
    end

    // inflight beats (not cleared by flush: dropped beats still arrive)
    reg rst_q;
    always @(posedge clk) rst_q <= rst;
    always @(posedge clk) begin
        inflight <= inflight + ((ar_take && !rst) ? burst : 32'd0) - (r_valid ? 32'd1 : 32'd0);
    end

    // ---- aligned data FIFO
    wire [511:0] d_q;
    wire d_v;
    wire d_pop;
    systole_fifo #(.W(512), .LOG2(DATA_LOG2)) u_data (
        .clk(clk), .clr(rst), .push(r_valid && !drop), .din(r_data), .full(),
        .pop(d_pop), .dout(d_q), .valid(d_v), .count(dcount));

    // ---- realigner command FIFO {off, nb_out, nb_al}
    wire [69:0] ral_q;
    wire ral_v;
    wire ral_pop;
    systole_fifo #(.W(70), .LOG2(REQ_LOG2)) u_ral (
        .clk(clk), .clr(rst), .push(take_req), .din({off, nb_out, nb_al}), .full(ral_full),
        .pop(ral_pop), .dout(ral_q), .valid(ral_v), .count());

    // realigner: out beat k = {al[k+1], al[k]} >> 8*off; unaligned requests first load al[0] into prev
    reg        ra_act, have_prev;
    reg [5:0]  ra_off;
    reg [31:0] ra_out, ra_al;                // output beats / aligned beats still to handle
    reg [511:0] prev;
    wire o_full;
    wire [1023:0] win = {(ra_al != 0) ? d_q : 512'd0, prev};
    wire [1023:0] shifted = win >> {ra_off, 3'b000};
    wire need_data = (ra_al != 0);
    wire can_emit = ra_act && have_prev && !o_full && (!need_data || d_v);
    wire can_load = ra_act && !have_prev && d_v;
    assign d_pop = (can_emit && need_data) || can_load;
    wire o_push = can_emit;
    // the next request starts in the cycle the current one emits its last beat (or when idle), so aligned
    // single-beat requests realign at one per cycle
    wire ra_last = can_emit && (ra_out == 32'd1);
    assign ral_pop = !rst && ral_v && (!ra_act || ra_last);
    always @(posedge clk) begin
        if (rst) begin
            ra_act <= 1'b0;
            have_prev <= 1'b0;
        end else begin
            if (can_load) begin
                prev <= d_q;
                have_prev <= 1'b1;
                ra_al <= ra_al - 32'd1;
            end
            if (can_emit) begin
                if (need_data) begin
                    prev <= d_q;
                    ra_al <= ra_al - 32'd1;
                end
                ra_out <= ra_out - 32'd1;
            end
            if (ral_pop) begin
                ra_act <= 1'b1;
                ra_off <= ral_q[69:64];
                ra_out <= ral_q[63:32];
                ra_al <= ral_q[31:0];
                have_prev <= (ral_q[69:64] == 6'd0);   // aligned: no preload, prev unused
            end else if (ra_last) begin
                ra_act <= 1'b0;
                have_prev <= 1'b0;
            end
        end
    end
    // aligned requests: beat = d_q itself (off = 0 -> shifted[511:0] = prev, so select d_q directly)
    wire [511:0] o_din = (ra_off == 6'd0) ? d_q : shifted[511:0];

    wire [511:0] o_q;
    wire o_v;
    wire o_pop;
    systole_fifo #(.W(512), .LOG2(OUT_LOG2)) u_out (
        .clk(clk), .clr(rst), .push(o_push), .din(o_din), .full(o_full),
        .pop(o_pop), .dout(o_q), .valid(o_v), .count());

    // ---- playout FIFO {s, nb_out}: beat k of the head request is due in cycle s + k
    wire [63:0] pl_q;
    wire pl_v;
    wire pl_pop;
    systole_fifo #(.W(64), .LOG2(REQ_LOG2)) u_play (
        .clk(clk), .clr(rst), .push(take_req), .din({s, nb_out}), .full(play_full),
        .pop(pl_pop), .dout(pl_q), .valid(pl_v), .count());
    reg [31:0] k;
    wire [31:0] due = pl_q[63:32] + k;
    wire [31:0] nxt = now + 32'd1;                       // decide now for the next cycle
    wire [31:0] due_diff = nxt - due;
    wire due_reached = !due_diff[31];                     // next cycle >= due (mod 2^32)
    wire emit = pl_v && o_v && due_reached && !rst;
    assign o_pop = emit;
    assign pl_pop = emit && (k + 32'd1 == pl_q[31:0]);
    always @(posedge clk) begin
        beat_valid <= emit;
        late <= emit && (nxt != due);
        if (emit) beat_data <= o_q;
        if (rst) k <= 32'd0;
        else if (emit) k <= pl_pop ? 32'd0 : k + 32'd1;
    end

    wire unused_ok = &{1'b0, rst_q, span[5:0], bar_diff[30:0], shifted[1023:512], due_diff[30:0]};
endmodule

// ---------------------------------------------------------------------------------------------------------
// The DMA half: two read channels and the write channel onto one AXI4 master (512-bit, 64-bit address).
// ---------------------------------------------------------------------------------------------------------
module systole_dma_axi #(
    parameter integer L = 64,
    parameter integer ID_W = 4,
    parameter integer REQ_LOG2 = 10,
    parameter integer DATA_LOG2 = 11,
    parameter integer WR_LOG2 = 9
) (
    input  wire clk,
    input  wire rst,
    input  wire flush,
    // engine channels (names as in the exported engine: fetch$*, load_dma$*, store_dma$*)
    input  wire         fetch_req_valid,
    input  wire [63:0]  fetch_req_addr,
    input  wire [31:0]  fetch_req_len,
    output wire         fetch_beat_valid,
    output wire [511:0] fetch_beat_data,
    input  wire         load_req_valid,
    input  wire [63:0]  load_req_addr,
    input  wire [31:0]  load_req_len,
    output wire         load_beat_valid,
    output wire [511:0] load_beat_data,
    input  wire         store_valid,
    input  wire [63:0]  store_addr,
    input  wire [31:0]  store_len,
    input  wire [511:0] store_data,
    // AXI4 master
    output reg  [ID_W-1:0] m_arid,
    output reg  [63:0]  m_araddr,
    output reg  [7:0]   m_arlen,
    output wire [2:0]   m_arsize,
    output wire [1:0]   m_arburst,
    output reg          m_arvalid,
    input  wire         m_arready,
    input  wire [ID_W-1:0] m_rid,
    input  wire [511:0] m_rdata,
    input  wire [1:0]   m_rresp,
    input  wire         m_rlast,
    input  wire         m_rvalid,
    output wire         m_rready,
    output wire [ID_W-1:0] m_awid,
    output reg  [63:0]  m_awaddr,
    output wire [7:0]   m_awlen,
    output wire [2:0]   m_awsize,
    output wire [1:0]   m_awburst,
    output reg          m_awvalid,
    input  wire         m_awready,
    output reg  [511:0] m_wdata,
    output reg  [63:0]  m_wstrb,
    output wire         m_wlast,
    output reg          m_wvalid,
    input  wire         m_wready,
    input  wire [ID_W-1:0] m_bid,
    input  wire [1:0]   m_bresp,
    input  wire         m_bvalid,
    output wire         m_bready,
    // status
    output wire         wr_idle,
    output reg  [31:0]  status,
    input  wire [31:0]  status_clear
);
    assign m_arsize = 3'd6;        // 64-byte beats
    assign m_arburst = 2'b01;      // INCR
    assign m_awsize = 3'd6;
    assign m_awburst = 2'b01;
    assign m_awlen = 8'd0;         // every write is a single beat
    assign m_wlast = 1'b1;
    assign m_awid = {ID_W{1'b0}};
    assign m_rready = 1'b1;        // credit-based: the data FIFOs always have room
    assign m_bready = 1'b1;

    reg [31:0] now;
    always @(posedge clk) now <= rst ? 32'd0 : now + 32'd1;

    // flush held 4 cycles so requests of units being reset are discarded too
    reg [3:0] fl_sr;
    always @(posedge clk) fl_sr <= rst ? 4'd0 : {fl_sr[2:0], flush};
    wire ch_rst = rst | flush | (|fl_sr);
    reg drop_f, drop_l;

    // ---- write path
    reg  [31:0] wr_enq_cnt, wr_b_cnt;      // AXI write pieces queued / acknowledged
    wire w_full;
    wire [6:0] w_len = store_len[6:0];
    wire w_len_ok = (store_len != 0) && (store_len <= 32'd64);
    wire w_push = store_valid && w_len_ok && !w_full;
    wire [6:0] w_end = {1'b0, store_addr[5:0]} + w_len;               // > 64: straddles two lines
    wire [31:0] w_pieces = (w_end > 7'd64) ? 32'd2 : 32'd1;
    wire [582:0] w_q;
    wire w_v;
    wire w_pop;
    systole_fifo #(.W(583), .LOG2(WR_LOG2)) u_wr (
        .clk(clk), .clr(rst), .push(w_push), .din({store_addr, w_len, store_data}), .full(w_full),
        .pop(w_pop), .dout(w_q), .valid(w_v), .count());
    // head -> the two line pieces
    wire [63:0]   wq_addr = w_q[582:519];
    wire [6:0]    wq_len  = w_q[518:512];
    wire [5:0]    wq_off  = wq_addr[5:0];
    wire [1023:0] wq_wide = {512'd0, w_q[511:0]} << {wq_off, 3'b000};
    wire [127:0]  wq_mask = ((128'd1 << wq_len) - 128'd1) << wq_off;
    reg           p1_pend;                 // second piece still to go
    reg [511:0]   p1_data;
    reg [63:0]    p1_strb;
    reg [63:0]    p1_addr;
    wire aw_ok = !m_awvalid || m_awready;
    wire w_ok  = !m_wvalid || m_wready;
    assign w_pop = !rst && aw_ok && w_ok && !p1_pend && w_v;
    always @(posedge clk) begin
        if (rst) begin
            m_awvalid <= 1'b0;
            m_wvalid <= 1'b0;
            p1_pend <= 1'b0;
        end else begin
            if (m_awvalid && m_awready) m_awvalid <= 1'b0;
            if (m_wvalid && m_wready) m_wvalid <= 1'b0;
            if (aw_ok && w_ok) begin
                if (p1_pend) begin
                    m_awaddr <= p1_addr; m_wdata <= p1_data; m_wstrb <= p1_strb;
                    m_awvalid <= 1'b1; m_wvalid <= 1'b1;
                    p1_pend <= 1'b0;
                end else if (w_pop) begin
                    m_awaddr <= {wq_addr[63:6], 6'd0};
                    m_wdata <= wq_wide[511:0];
                    m_wstrb <= wq_mask[63:0];
                    m_awvalid <= 1'b1; m_wvalid <= 1'b1;
                    p1_pend <= |wq_mask[127:64];
                    p1_addr <= {wq_addr[63:6], 6'd0} + 64'd64;
                    p1_data <= wq_wide[1023:512];
                    p1_strb <= wq_mask[127:64];
                end
            end
        end
    end
    always @(posedge clk) begin
        if (rst) begin
            wr_enq_cnt <= 32'd0;
            wr_b_cnt <= 32'd0;
        end else begin
            if (w_push) wr_enq_cnt <= wr_enq_cnt + w_pieces;
            if (m_bvalid) wr_b_cnt <= wr_b_cnt + 32'd1;
        end
    end
    assign wr_idle = !w_v && !p1_pend && !m_awvalid && !m_wvalid && (wr_enq_cnt == wr_b_cnt);

    // ---- read channels
    wire        f_cand, l_cand;
    wire [63:0] f_caddr, l_caddr;
    wire [7:0]  f_clen, l_clen;
    wire        f_take, l_take;
    wire [31:0] f_inflight, l_inflight;
    wire        f_late, l_late, f_ovf, l_ovf;
    wire r_is_load = m_rid[0];
    systole_rd_chan #(.L(L), .REQ_LOG2(REQ_LOG2), .DATA_LOG2(DATA_LOG2)) u_fetch (
        .clk(clk), .rst(ch_rst), .now(now),
        .req_valid(fetch_req_valid), .req_addr(fetch_req_addr), .req_len(fetch_req_len),
        .beat_valid(fetch_beat_valid), .beat_data(fetch_beat_data),
        .wr_enq_cnt(wr_enq_cnt), .wr_b_cnt(wr_b_cnt),
        .ar_cand(f_cand), .ar_cand_addr(f_caddr), .ar_cand_len(f_clen), .ar_take(f_take),
        .r_valid(m_rvalid && !r_is_load), .r_data(m_rdata), .drop(drop_f),
        .inflight(f_inflight), .late(f_late), .overflow(f_ovf));
    systole_rd_chan #(.L(L), .REQ_LOG2(REQ_LOG2), .DATA_LOG2(DATA_LOG2)) u_load (
        .clk(clk), .rst(ch_rst), .now(now),
        .req_valid(load_req_valid), .req_addr(load_req_addr), .req_len(load_req_len),
        .beat_valid(load_beat_valid), .beat_data(load_beat_data),
        .wr_enq_cnt(wr_enq_cnt), .wr_b_cnt(wr_b_cnt),
        .ar_cand(l_cand), .ar_cand_addr(l_caddr), .ar_cand_len(l_clen), .ar_take(l_take),
        .r_valid(m_rvalid && r_is_load), .r_data(m_rdata), .drop(drop_l),
        .inflight(l_inflight), .late(l_late), .overflow(l_ovf));

    // drop: from a flush until every beat requested before it has come back
    always @(posedge clk) begin
        if (rst) begin
            drop_f <= 1'b0;
            drop_l <= 1'b0;
        end else begin
            drop_f <= (flush || drop_f) && (f_inflight != 0 || flush);
            drop_l <= (flush || drop_l) && (l_inflight != 0 || flush);
        end
    end

    // AR arbiter: round robin between the channels' candidate bursts
    reg last_load;
    wire ar_free = !m_arvalid || m_arready;
    wire pick_load = l_cand && (!f_cand || !last_load);
    // the chosen channel's splitter advances at the same clock edge that loads the AR register
    assign f_take = !rst && ar_free && f_cand && !pick_load;
    assign l_take = !rst && ar_free && pick_load;
    always @(posedge clk) begin
        if (rst) begin
            m_arvalid <= 1'b0;
            last_load <= 1'b0;
        end else begin
            if (m_arvalid && m_arready) m_arvalid <= 1'b0;
            if (f_take || l_take) begin
                m_arvalid <= 1'b1;
                m_arid <= {{(ID_W-1){1'b0}}, l_take};
                m_araddr <= l_take ? l_caddr : f_caddr;
                m_arlen <= l_take ? l_clen : f_clen;
                last_load <= l_take;
            end
        end
    end

    // sticky status
    wire [31:0] ev = {25'd0, store_valid && !w_len_ok,
                      (m_rvalid && m_rresp != 2'b00) || (m_bvalid && m_bresp != 2'b00),
                      store_valid && w_len_ok && w_full, l_ovf, f_ovf, l_late, f_late};
    always @(posedge clk) status <= rst ? 32'd0 : ((status & ~status_clear) | ev);

    wire unused_ok = &{1'b0, m_rlast, m_rid, m_bid, store_len[31:7]};
endmodule

// ---------------------------------------------------------------------------------------------------------
// Both halves, as the top instantiates them.
// ---------------------------------------------------------------------------------------------------------
module systole_axi_bridge #(
    parameter integer L = 64,              // MUST equal the exported engine's dma_latency
    parameter integer ID_W = 4,
    parameter integer REQ_LOG2 = 10,
    parameter integer DATA_LOG2 = 11,
    parameter integer WR_LOG2 = 9
) (
    input  wire clk,
    input  wire rst,
    // AXI4-Lite slave (BAR0)
    input  wire [12:0] s_awaddr,  input wire s_awvalid, output wire s_awready,
    input  wire [31:0] s_wdata,   input wire [3:0] s_wstrb, input wire s_wvalid, output wire s_wready,
    output wire [1:0]  s_bresp,   output wire s_bvalid, input wire s_bready,
    input  wire [12:0] s_araddr,  input wire s_arvalid, output wire s_arready,
    output wire [31:0] s_rdata,   output wire [1:0] s_rresp, output wire s_rvalid, input wire s_rready,
    // engine BAR0
    output wire        bar_wr_en, output wire [11:0] bar_wr_addr, output wire [31:0] bar_wr_data,
    output wire        bar_rd_en, output wire [11:0] bar_rd_addr, input wire [31:0] bar_rd_data,
    // engine memory channels
    input  wire fetch_req_valid, input wire [63:0] fetch_req_addr, input wire [31:0] fetch_req_len,
    output wire fetch_beat_valid, output wire [511:0] fetch_beat_data,
    input  wire load_req_valid, input wire [63:0] load_req_addr, input wire [31:0] load_req_len,
    output wire load_beat_valid, output wire [511:0] load_beat_data,
    input  wire store_valid, input wire [63:0] store_addr, input wire [31:0] store_len,
    input  wire [511:0] store_data,
    // AXI4 master (to XDMA S_AXI_B or a memory controller)
    output wire [ID_W-1:0] m_arid, output wire [63:0] m_araddr, output wire [7:0] m_arlen,
    output wire [2:0] m_arsize, output wire [1:0] m_arburst, output wire m_arvalid, input wire m_arready,
    input  wire [ID_W-1:0] m_rid, input wire [511:0] m_rdata, input wire [1:0] m_rresp,
    input  wire m_rlast, input wire m_rvalid, output wire m_rready,
    output wire [ID_W-1:0] m_awid, output wire [63:0] m_awaddr, output wire [7:0] m_awlen,
    output wire [2:0] m_awsize, output wire [1:0] m_awburst, output wire m_awvalid, input wire m_awready,
    output wire [511:0] m_wdata, output wire [63:0] m_wstrb, output wire m_wlast, output wire m_wvalid,
    input  wire m_wready,
    input  wire [ID_W-1:0] m_bid, input wire [1:0] m_bresp, input wire m_bvalid, output wire m_bready,
    // to the top
    output wire        wr_idle,
    output wire [31:0] status
);
    wire flush;
    wire [31:0] status_clear;
    systole_axil_bar u_bar (
        .clk(clk), .rst(rst),
        .s_awaddr(s_awaddr), .s_awvalid(s_awvalid), .s_awready(s_awready),
        .s_wdata(s_wdata), .s_wstrb(s_wstrb), .s_wvalid(s_wvalid), .s_wready(s_wready),
        .s_bresp(s_bresp), .s_bvalid(s_bvalid), .s_bready(s_bready),
        .s_araddr(s_araddr), .s_arvalid(s_arvalid), .s_arready(s_arready),
        .s_rdata(s_rdata), .s_rresp(s_rresp), .s_rvalid(s_rvalid), .s_rready(s_rready),
        .bar_wr_en(bar_wr_en), .bar_wr_addr(bar_wr_addr), .bar_wr_data(bar_wr_data),
        .bar_rd_en(bar_rd_en), .bar_rd_addr(bar_rd_addr), .bar_rd_data(bar_rd_data),
        .flush(flush), .status(status), .status_clear(status_clear));
    systole_dma_axi #(.L(L), .ID_W(ID_W), .REQ_LOG2(REQ_LOG2), .DATA_LOG2(DATA_LOG2), .WR_LOG2(WR_LOG2)) u_dma (
        .clk(clk), .rst(rst), .flush(flush),
        .fetch_req_valid(fetch_req_valid), .fetch_req_addr(fetch_req_addr), .fetch_req_len(fetch_req_len),
        .fetch_beat_valid(fetch_beat_valid), .fetch_beat_data(fetch_beat_data),
        .load_req_valid(load_req_valid), .load_req_addr(load_req_addr), .load_req_len(load_req_len),
        .load_beat_valid(load_beat_valid), .load_beat_data(load_beat_data),
        .store_valid(store_valid), .store_addr(store_addr), .store_len(store_len), .store_data(store_data),
        .m_arid(m_arid), .m_araddr(m_araddr), .m_arlen(m_arlen), .m_arsize(m_arsize), .m_arburst(m_arburst),
        .m_arvalid(m_arvalid), .m_arready(m_arready),
        .m_rid(m_rid), .m_rdata(m_rdata), .m_rresp(m_rresp), .m_rlast(m_rlast), .m_rvalid(m_rvalid),
        .m_rready(m_rready),
        .m_awid(m_awid), .m_awaddr(m_awaddr), .m_awlen(m_awlen), .m_awsize(m_awsize), .m_awburst(m_awburst),
        .m_awvalid(m_awvalid), .m_awready(m_awready),
        .m_wdata(m_wdata), .m_wstrb(m_wstrb), .m_wlast(m_wlast), .m_wvalid(m_wvalid), .m_wready(m_wready),
        .m_bid(m_bid), .m_bresp(m_bresp), .m_bvalid(m_bvalid), .m_bready(m_bready),
        .wr_idle(wr_idle), .status(status), .status_clear(status_clear));
endmodule

/* verilator lint_on PINCONNECTEMPTY */
/* verilator lint_on DECLFILENAME */
`default_nettype wire
