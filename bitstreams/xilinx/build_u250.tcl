# build_u250.tcl -- Vivado non-project build of the systole engine for the Alveo U250 (xcu250-figd2104-2L-e).
# NOT RUN: written without Vivado (see README.md). Usage:
#   vivado -mode batch -source build_u250.tcl -tclargs <engine.v> <outdir>
# <engine.v>: `systole hdl export --config 16x16 -o engine.v` (top module systole_engine_16x16_msfp16).
#
# PCIe: the XDMA IP ("DMA/Bridge Subsystem for PCI Express", PG195) in AXI BRIDGE mode, Gen3 x16, 512-bit
# AXI at 250 MHz. Why bridge mode rather than DMA mode: the engine masters host memory itself (its fetch,
# LOAD and STORE read and write the DMA window directly, docs/driver.md) -- it needs an AXI *slave* port that
# turns AXI reads/writes into PCIe memory requests (S_AXI_B, the slave bridge), not XDMA's descriptor-
# driven H2C/C2H engines. In bridge mode BAR0 comes out on the master bridge M_AXI_B (AXI4, 512-bit) instead
# of DMA mode's M_AXI_LITE; systole_u250_top.v narrows its single-beat 32-bit accesses onto the bridge's
# AXI4-Lite slave. The AXI->PCIe translation is the identity (axibar2pciebar_0 = 0), so the engine's
# IOVAs (DMA_BASE + offset) are used as PCIe addresses unchanged; the IOMMU (VFIO) translates them.
# Property names below follow the XDMA 4.1 IP; check them with `report_property [get_ips xdma_0]` if the
# Vivado version differs (IP parameters are the least certain part of this flow).

if {$argc < 2} {
    puts "usage: vivado -mode batch -source build_u250.tcl -tclargs <engine.v> <outdir>"
    exit 1
}
set engine_v [file normalize [lindex $argv 0]]
set outdir   [file normalize [lindex $argv 1]]
set here     [file dirname [file normalize [info script]]]
set part     xcu250-figd2104-2L-e
# BAR0: 4 KiB = the engine's register map (arch::regs::BAR0_SIZE). 8 makes the bridge status word at
# 0x1000 reachable too (systole_axi_bridge.v).
set bar0_kb  4
file mkdir $outdir
set_part $part

# ---- XDMA IP (generated into <outdir>/ip)
file mkdir $outdir/ip
create_ip -name xdma -vendor xilinx.com -library ip -module_name xdma_0 -dir $outdir/ip
set_property -dict [list \
    CONFIG.functional_mode            {AXI_Bridge} \
    CONFIG.mode_selection             {Advanced} \
    CONFIG.pl_link_cap_max_link_width {X16} \
    CONFIG.pl_link_cap_max_link_speed {8.0_GT/s} \
    CONFIG.axi_data_width             {512_bit} \
    CONFIG.axisten_freq               {250} \
    CONFIG.ref_clk_freq               {100_MHz} \
    CONFIG.axi_addr_width             {64} \
    CONFIG.axi_id_width               {4} \
    CONFIG.en_axi_master_if           {true} \
    CONFIG.en_axi_slave_if            {true} \
    CONFIG.pf0_bar0_enabled           {true} \
    CONFIG.pf0_bar0_64bit             {false} \
    CONFIG.pf0_bar0_size              $bar0_kb \
    CONFIG.pf0_bar0_scale             {Kilobytes} \
    CONFIG.pciebar2axibar_0           {0x0000000000000000} \
    CONFIG.axibar_num                 {1} \
    CONFIG.axibar_0                   {0x0000000000000000} \
    CONFIG.axibar_highaddr_0          {0x0000FFFFFFFFFFFF} \
    CONFIG.axibar2pciebar_0           {0x0000000000000000} \
    CONFIG.pf0_msi_enabled            {true} \
    CONFIG.xdma_num_usr_irq           {1} \
    CONFIG.pf0_device_id              {9038} \
    CONFIG.pf0_class_code_base        {12} \
] [get_ips xdma_0]
generate_target {synthesis instantiation_template} [get_ips xdma_0]
synth_ip [get_ips xdma_0]

# ---- sources
read_verilog $engine_v
read_verilog $here/rtl/systole_axi_bridge.v
read_verilog $here/rtl/systole_u250_top.v
read_xdc     $here/u250.xdc

# ---- synthesis and implementation
synth_design -top systole_u250_top -part $part
write_checkpoint -force $outdir/post_synth.dcp
report_utilization -file $outdir/utilization_synth.rpt
opt_design
place_design
phys_opt_design
route_design
write_checkpoint -force $outdir/post_route.dcp
report_utilization      -file $outdir/utilization.rpt
report_utilization -hierarchical -file $outdir/utilization_hier.rpt
report_timing_summary -max_paths 20 -report_unconstrained -file $outdir/timing_summary.rpt
report_clock_interaction -file $outdir/clock_interaction.rpt
report_drc              -file $outdir/drc.rpt
if {[get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]] < 0} {
    puts "WARNING: timing not met, see $outdir/timing_summary.rpt"
}
write_bitstream -force $outdir/systole_u250.bit
# SPI flash image (U250 config flash: SPIx4, see u250.xdc)
write_cfgmem -force -format mcs -size 1024 -interface SPIx4 \
    -loadbit "up 0x01002000 $outdir/systole_u250.bit" $outdir/systole_u250.mcs
puts "done: $outdir/systole_u250.bit"
