// systole_u250_top.v -- Alveo U250 top level: PCIe Gen3 x16 (XDMA IP in AXI Bridge mode), the AXI bridge
// (systole_axi_bridge.v) and the exported engine (systole_engine_16x16_msfp16, 512-bit beats).
// Hand-written; lint-checked with Verilator against a stub of the XDMA IP (lint/xdma_0_stub.v). Never
// synthesised here: the XDMA port names follow PG195's AXI Bridge mode and must be checked against the
// instantiation template Vivado writes for the generated IP (xdma_0.veo) -- see ../README.md.
//
//   host --PCIe--> XDMA --M_AXI_B (BAR0, AXI4 512-bit, single-beat 32-bit accesses)--> lane shim
//                     --> systole_axil_bar --> engine bar$*
//   engine fetch$*, load_dma$*, store_dma$* --> systole_dma_axi --AXI4 512-bit--> XDMA S_AXI_B --> host memory
//   engine irq (held back until the write path is idle) --> XDMA usr_irq_req[0] (MSI)
//
// One clock: the engine, the bridge and XDMA's AXI side all run on axi_aclk (250 MHz for Gen3 x16 with a
// 512-bit AXI interface), which is also the 16x16 preset's clock_mhz. Reset: axi_aresetn (low while the
// link is down or PERST# is asserted), registered, active high to the engine and the bridge.

`default_nettype none
// Outputs nothing here reads (XDMA's AxPROT/AxLOCK/AxCACHE, the engine's inst_trace) are left unconnected.
/* verilator lint_off PINCONNECTEMPTY */

module systole_u250_top #(
    parameter integer DMA_LATENCY = 64      // MUST equal the exported engine's dma_latency (16x16: 64)
) (
    input  wire        pcie_refclk_p,       // 100 MHz PCIe reference clock (MGTREFCLK0_226)
    input  wire        pcie_refclk_n,
    input  wire        pcie_perst_n,        // PERST# from the edge connector
    input  wire [15:0] pci_exp_rxp,
    input  wire [15:0] pci_exp_rxn,
    output wire [15:0] pci_exp_txp,
    output wire [15:0] pci_exp_txn
);
    // ---- reference clock: GT buffer, full rate to the GTs, /2 to the PCIe block's sys_clk
    wire sys_clk_gt, sys_clk;
    IBUFDS_GTE4 #(.REFCLK_HROW_CK_SEL(2'b00)) u_refclk (
        .I(pcie_refclk_p), .IB(pcie_refclk_n), .CEB(1'b0), .O(sys_clk_gt), .ODIV2(sys_clk));

    wire axi_aclk, axi_aresetn, user_lnk_up;
    localparam integer ID_W = 4;

    // XDMA master bridge (BAR0 -> AXI)
    wire [ID_W-1:0] mb_awid, mb_arid;
    wire [63:0]  mb_awaddr, mb_araddr;
    wire [7:0]   mb_awlen, mb_arlen;
    wire [2:0]   mb_awsize, mb_arsize;
    wire [1:0]   mb_awburst, mb_arburst;
    wire         mb_awvalid, mb_arvalid, mb_wvalid, mb_wlast;
    wire         mb_awready, mb_arready, mb_wready;
    wire [511:0] mb_wdata;
    wire [63:0]  mb_wstrb;
    reg  [ID_W-1:0] mb_bid, mb_rid;
    wire [1:0]   mb_bresp, mb_rresp;
    wire         mb_bvalid, mb_bready, mb_rvalid, mb_rready;
    wire [511:0] mb_rdata;

    // XDMA slave bridge (AXI -> host memory)
    wire [ID_W-1:0] sb_awid, sb_arid, sb_bid, sb_rid;
    wire [63:0]  sb_awaddr, sb_araddr;
    wire [7:0]   sb_awlen, sb_arlen;
    wire [2:0]   sb_awsize, sb_arsize;
    wire [1:0]   sb_awburst, sb_arburst;
    wire         sb_awvalid, sb_awready, sb_arvalid, sb_arready;
    wire [511:0] sb_wdata, sb_rdata;
    wire [63:0]  sb_wstrb;
    wire         sb_wlast, sb_wvalid, sb_wready;
    wire [1:0]   sb_bresp, sb_rresp;
    wire         sb_bvalid, sb_bready, sb_rlast, sb_rvalid, sb_rready;

    wire usr_irq_ack;
    reg  usr_irq_req;

    xdma_0 u_xdma (
        .sys_clk(sys_clk), .sys_clk_gt(sys_clk_gt), .sys_rst_n(pcie_perst_n),
        .pci_exp_txp(pci_exp_txp), .pci_exp_txn(pci_exp_txn),
        .pci_exp_rxp(pci_exp_rxp), .pci_exp_rxn(pci_exp_rxn),
        .axi_aclk(axi_aclk), .axi_aresetn(axi_aresetn), .user_lnk_up(user_lnk_up),
        .usr_irq_req(usr_irq_req), .usr_irq_ack(usr_irq_ack),
        // master bridge
        .m_axib_awid(mb_awid), .m_axib_awaddr(mb_awaddr), .m_axib_awlen(mb_awlen), .m_axib_awsize(mb_awsize),
        .m_axib_awburst(mb_awburst), .m_axib_awprot(), .m_axib_awlock(), .m_axib_awcache(),
        .m_axib_awvalid(mb_awvalid), .m_axib_awready(mb_awready),
        .m_axib_wdata(mb_wdata), .m_axib_wstrb(mb_wstrb), .m_axib_wlast(mb_wlast),
        .m_axib_wvalid(mb_wvalid), .m_axib_wready(mb_wready),
        .m_axib_bid(mb_bid), .m_axib_bresp(mb_bresp), .m_axib_bvalid(mb_bvalid), .m_axib_bready(mb_bready),
        .m_axib_arid(mb_arid), .m_axib_araddr(mb_araddr), .m_axib_arlen(mb_arlen), .m_axib_arsize(mb_arsize),
        .m_axib_arburst(mb_arburst), .m_axib_arprot(), .m_axib_arlock(), .m_axib_arcache(),
        .m_axib_arvalid(mb_arvalid), .m_axib_arready(mb_arready),
        .m_axib_rid(mb_rid), .m_axib_rdata(mb_rdata), .m_axib_rresp(mb_rresp), .m_axib_rlast(1'b1),
        .m_axib_rvalid(mb_rvalid), .m_axib_rready(mb_rready),
        // slave bridge
        .s_axib_awid(sb_awid), .s_axib_awaddr(sb_awaddr), .s_axib_awregion(4'd0), .s_axib_awlen(sb_awlen),
        .s_axib_awsize(sb_awsize), .s_axib_awburst(sb_awburst), .s_axib_awvalid(sb_awvalid),
        .s_axib_awready(sb_awready),
        .s_axib_wdata(sb_wdata), .s_axib_wstrb(sb_wstrb), .s_axib_wlast(sb_wlast), .s_axib_wvalid(sb_wvalid),
        .s_axib_wready(sb_wready),
        .s_axib_bid(sb_bid), .s_axib_bresp(sb_bresp), .s_axib_bvalid(sb_bvalid), .s_axib_bready(sb_bready),
        .s_axib_arid(sb_arid), .s_axib_araddr(sb_araddr), .s_axib_arregion(4'd0), .s_axib_arlen(sb_arlen),
        .s_axib_arsize(sb_arsize), .s_axib_arburst(sb_arburst), .s_axib_arvalid(sb_arvalid),
        .s_axib_arready(sb_arready),
        .s_axib_rid(sb_rid), .s_axib_rdata(sb_rdata), .s_axib_rresp(sb_rresp), .s_axib_rlast(sb_rlast),
        .s_axib_rvalid(sb_rvalid), .s_axib_rready(sb_rready)
    );

    // ---- reset: registered, active high
    reg rst_q, rst;
    always @(posedge axi_aclk) begin
        rst_q <= !axi_aresetn;
        rst <= rst_q;
    end

    // ---- BAR0 lane shim: M_AXI_B is AXI4, 512 bits wide. The driver only makes single 32-bit accesses,
    // which arrive as single beats with the word in lane addr[5:2]. Bursts (AxLEN > 0) are NOT supported.
    wire s_awready, s_wready, s_arready;
    wire [31:0] s_rdata;
    assign mb_awready = s_awready;
    assign mb_wready = s_wready;
    assign mb_arready = s_arready;
    assign mb_rdata = {16{s_rdata}};
    always @(posedge axi_aclk) begin
        if (mb_awvalid && mb_awready) mb_bid <= mb_awid;
        if (mb_arvalid && mb_arready) mb_rid <= mb_arid;
    end
    wire [31:0] lane_wdata = mb_wdata[{mb_awaddr[5:2], 5'd0} +: 32];
    wire [3:0]  lane_wstrb = mb_wstrb[{mb_awaddr[5:2], 2'd0} +: 4];

    // ---- engine <-> bridge
    wire        bar_wr_en, bar_rd_en;
    wire [11:0] bar_wr_addr, bar_rd_addr;
    wire [31:0] bar_wr_data, bar_rd_data;
    wire        irq;
    wire        f_req_valid, l_req_valid, f_beat_valid, l_beat_valid, st_valid;
    wire [63:0] f_req_addr, l_req_addr, st_addr;
    wire [31:0] f_req_len, l_req_len, st_len;
    wire [511:0] f_beat_data, l_beat_data, st_data;
    wire        wr_idle;
    wire [31:0] bridge_status;

    systole_axi_bridge #(.L(DMA_LATENCY), .ID_W(ID_W)) u_bridge (
        .clk(axi_aclk), .rst(rst),
        .s_awaddr(mb_awaddr[12:0]), .s_awvalid(mb_awvalid), .s_awready(s_awready),
        .s_wdata(lane_wdata), .s_wstrb(lane_wstrb), .s_wvalid(mb_wvalid), .s_wready(s_wready),
        .s_bresp(mb_bresp), .s_bvalid(mb_bvalid), .s_bready(mb_bready),
        .s_araddr(mb_araddr[12:0]), .s_arvalid(mb_arvalid), .s_arready(s_arready),
        .s_rdata(s_rdata), .s_rresp(mb_rresp), .s_rvalid(mb_rvalid), .s_rready(mb_rready),
        .bar_wr_en(bar_wr_en), .bar_wr_addr(bar_wr_addr), .bar_wr_data(bar_wr_data),
        .bar_rd_en(bar_rd_en), .bar_rd_addr(bar_rd_addr), .bar_rd_data(bar_rd_data),
        .fetch_req_valid(f_req_valid), .fetch_req_addr(f_req_addr), .fetch_req_len(f_req_len),
        .fetch_beat_valid(f_beat_valid), .fetch_beat_data(f_beat_data),
        .load_req_valid(l_req_valid), .load_req_addr(l_req_addr), .load_req_len(l_req_len),
        .load_beat_valid(l_beat_valid), .load_beat_data(l_beat_data),
        .store_valid(st_valid), .store_addr(st_addr), .store_len(st_len), .store_data(st_data),
        .m_arid(sb_arid), .m_araddr(sb_araddr), .m_arlen(sb_arlen), .m_arsize(sb_arsize),
        .m_arburst(sb_arburst), .m_arvalid(sb_arvalid), .m_arready(sb_arready),
        .m_rid(sb_rid), .m_rdata(sb_rdata), .m_rresp(sb_rresp), .m_rlast(sb_rlast), .m_rvalid(sb_rvalid),
        .m_rready(sb_rready),
        .m_awid(sb_awid), .m_awaddr(sb_awaddr), .m_awlen(sb_awlen), .m_awsize(sb_awsize),
        .m_awburst(sb_awburst), .m_awvalid(sb_awvalid), .m_awready(sb_awready),
        .m_wdata(sb_wdata), .m_wstrb(sb_wstrb), .m_wlast(sb_wlast), .m_wvalid(sb_wvalid),
        .m_wready(sb_wready),
        .m_bid(sb_bid), .m_bresp(sb_bresp), .m_bvalid(sb_bvalid), .m_bready(sb_bready),
        .wr_idle(wr_idle), .status(bridge_status));

    systole_engine_16x16_msfp16 u_engine (
        .clock(axi_aclk), .reset(rst),
        .\bar$wr_en (bar_wr_en), .\bar$wr_addr (bar_wr_addr), .\bar$wr_data (bar_wr_data),
        .\bar$rd_en (bar_rd_en), .\bar$rd_addr (bar_rd_addr), .\bar$rd_data (bar_rd_data),
        .irq(irq),
        .\fetch$rd_req_valid (f_req_valid), .\fetch$rd_req_addr (f_req_addr), .\fetch$rd_req_len (f_req_len),
        .\fetch$rd_beat_valid (f_beat_valid), .\fetch$rd_beat_data (f_beat_data),
        .\load_dma$rd_req_valid (l_req_valid), .\load_dma$rd_req_addr (l_req_addr),
        .\load_dma$rd_req_len (l_req_len),
        .\load_dma$rd_beat_valid (l_beat_valid), .\load_dma$rd_beat_data (l_beat_data),
        .\store_dma$wr_valid (st_valid), .\store_dma$wr_addr (st_addr), .\store_dma$wr_len (st_len),
        .\store_dma$wr_data (st_data),
        .inst_trace()                       // simulators only
    );

    // ---- interrupt: XDMA's usr_irq_req is level-style with an ack; the engine's irq is a level
    // (IRQ_STATUS & IRQ_ENABLE). It is passed on only once the write path is idle, so an interrupt never
    // overtakes the STORE data it announces. Request held until acked, then re-armed when irq drops.
    reg irq_sent;
    always @(posedge axi_aclk) begin
        if (rst) begin
            usr_irq_req <= 1'b0;
            irq_sent <= 1'b0;
        end else begin
            if (!irq_sent && irq && wr_idle) begin
                usr_irq_req <= 1'b1;
                irq_sent <= 1'b1;
            end
            if (usr_irq_req && usr_irq_ack) usr_irq_req <= 1'b0;
            if (!irq && !usr_irq_req) irq_sent <= 1'b0;
        end
    end

    wire unused_ok = &{1'b0, user_lnk_up, mb_awlen, mb_awsize, mb_awburst, mb_wlast, mb_arlen, mb_arsize,
                       mb_arburst, mb_awaddr[63:13], mb_araddr[63:13], bridge_status};
endmodule
/* verilator lint_on PINCONNECTEMPTY */

`default_nettype wire
