// LINT ONLY: empty stand-ins for the Vivado-generated XDMA IP (xdma_0, AXI Bridge mode, 512-bit, ID width 4)
// and the IBUFDS_GTE4 primitive, with the ports systole_u250_top.v connects, so Verilator can check the top.
// The real port list comes from the IP Vivado generates (build_u250.tcl); these stubs are never synthesised.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNDRIVEN */
/* verilator lint_off DECLFILENAME */
`default_nettype none
module IBUFDS_GTE4 #(parameter [1:0] REFCLK_HROW_CK_SEL = 2'b00) (
    input wire I, input wire IB, input wire CEB, output wire O, output wire ODIV2);
    assign O = I & ~IB & ~CEB;
    assign ODIV2 = O;
    wire unused_ok = &{1'b0, REFCLK_HROW_CK_SEL};
endmodule

module xdma_0 (
    input wire sys_clk, input wire sys_clk_gt, input wire sys_rst_n,
    output wire [15:0] pci_exp_txp, output wire [15:0] pci_exp_txn,
    input wire [15:0] pci_exp_rxp, input wire [15:0] pci_exp_rxn,
    output wire axi_aclk, output wire axi_aresetn, output wire user_lnk_up,
    input wire [0:0] usr_irq_req, output wire [0:0] usr_irq_ack,
    output wire [3:0] m_axib_awid, output wire [63:0] m_axib_awaddr, output wire [7:0] m_axib_awlen,
    output wire [2:0] m_axib_awsize, output wire [1:0] m_axib_awburst, output wire [2:0] m_axib_awprot,
    output wire m_axib_awlock, output wire [3:0] m_axib_awcache,
    output wire m_axib_awvalid, input wire m_axib_awready,
    output wire [511:0] m_axib_wdata, output wire [63:0] m_axib_wstrb, output wire m_axib_wlast,
    output wire m_axib_wvalid, input wire m_axib_wready,
    input wire [3:0] m_axib_bid, input wire [1:0] m_axib_bresp, input wire m_axib_bvalid,
    output wire m_axib_bready,
    output wire [3:0] m_axib_arid, output wire [63:0] m_axib_araddr, output wire [7:0] m_axib_arlen,
    output wire [2:0] m_axib_arsize, output wire [1:0] m_axib_arburst, output wire [2:0] m_axib_arprot,
    output wire m_axib_arlock, output wire [3:0] m_axib_arcache,
    output wire m_axib_arvalid, input wire m_axib_arready,
    input wire [3:0] m_axib_rid, input wire [511:0] m_axib_rdata, input wire [1:0] m_axib_rresp,
    input wire m_axib_rlast, input wire m_axib_rvalid, output wire m_axib_rready,
    input wire [3:0] s_axib_awid, input wire [63:0] s_axib_awaddr, input wire [3:0] s_axib_awregion,
    input wire [7:0] s_axib_awlen, input wire [2:0] s_axib_awsize, input wire [1:0] s_axib_awburst,
    input wire s_axib_awvalid, output wire s_axib_awready,
    input wire [511:0] s_axib_wdata, input wire [63:0] s_axib_wstrb, input wire s_axib_wlast,
    input wire s_axib_wvalid, output wire s_axib_wready,
    output wire [3:0] s_axib_bid, output wire [1:0] s_axib_bresp, output wire s_axib_bvalid,
    input wire s_axib_bready,
    input wire [3:0] s_axib_arid, input wire [63:0] s_axib_araddr, input wire [3:0] s_axib_arregion,
    input wire [7:0] s_axib_arlen, input wire [2:0] s_axib_arsize, input wire [1:0] s_axib_arburst,
    input wire s_axib_arvalid, output wire s_axib_arready,
    output wire [3:0] s_axib_rid, output wire [511:0] s_axib_rdata, output wire [1:0] s_axib_rresp,
    output wire s_axib_rlast, output wire s_axib_rvalid, input wire s_axib_rready
);
endmodule
`default_nettype wire
