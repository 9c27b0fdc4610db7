# u250.xdc -- constraints for systole_u250_top on the Alveo U250 (xcu250-figd2104-2L-e). NOT RUN (no Vivado).
#
# Pin sources (public): the PCIe x16 lanes, refclk and PERST# are those of AMD/Xilinx's alveo-u250-xdc.xdc
# (UG1289, Alveo U200/U250 board files), as reproduced in corundum/corundum
# fpga/mqnic/AU250/fpga_100g/fpga.xdc (GTYE4 channel numbers included) and Chester-Gillon/fpga_sio
# U200/constraints/pcie.xdc ("created from the Xilinx provided alveo-u250-xdc.xdc"). Lane i of the top's
# pci_exp_* ports is PCIe lane i; quads 227 (lanes 0-3), 226 (4-7), 225 (8-11), 224 (12-15).
# The XDMA IP places its own GTs (and pcie_blk_locn) for the part; if Vivado reports a conflict between
# these LOCs and the IP's, the IP's GT selection wins: drop the lane LOCs (the refclk LOC must stay).

# ---- configuration (as the U250 board XDC / corundum's AU250 design: SPI x4 flash)
set_property CFGBVS GND                                [current_design]
set_property CONFIG_VOLTAGE 1.8                        [current_design]
set_property BITSTREAM.GENERAL.COMPRESS TRUE           [current_design]
set_property BITSTREAM.CONFIG.CONFIGFALLBACK ENABLE    [current_design]
set_property BITSTREAM.CONFIG.EXTMASTERCCLK_EN DISABLE [current_design]
set_property BITSTREAM.CONFIG.CONFIGRATE 63.8          [current_design]
set_property CONFIG_MODE SPIx4                         [current_design]
set_property BITSTREAM.CONFIG.SPI_BUSWIDTH 4           [current_design]
set_property BITSTREAM.CONFIG.SPI_32BIT_ADDR YES       [current_design]
set_property BITSTREAM.CONFIG.SPI_FALL_EDGE YES        [current_design]
set_property BITSTREAM.CONFIG.UNUSEDPIN PULLUP         [current_design]

# ---- PCIe reference clock (100 MHz, MGTREFCLK0_226) and PERST#
set_property PACKAGE_PIN AM11 [get_ports pcie_refclk_p]   ;# MGTREFCLK0P_226
set_property PACKAGE_PIN AM10 [get_ports pcie_refclk_n]   ;# MGTREFCLK0N_226
create_clock -period 10.000 -name pcie_refclk [get_ports pcie_refclk_p]
set_property -dict {PACKAGE_PIN BD21 IOSTANDARD LVCMOS12 PULLUP true} [get_ports pcie_perst_n] ;# PCIE_PERST_LS, bank 64

# ---- PCIe lanes (P pins; the N pins follow)
set_property PACKAGE_PIN AF2 [get_ports {pci_exp_rxp[0]}]  ;# MGTYRXP3_227 GTYE4_CHANNEL_X1Y31
set_property PACKAGE_PIN AF7 [get_ports {pci_exp_txp[0]}]  ;# MGTYTXP3_227
set_property PACKAGE_PIN AG4 [get_ports {pci_exp_rxp[1]}]  ;# MGTYRXP2_227 GTYE4_CHANNEL_X1Y30
set_property PACKAGE_PIN AG9 [get_ports {pci_exp_txp[1]}]  ;# MGTYTXP2_227
set_property PACKAGE_PIN AH2 [get_ports {pci_exp_rxp[2]}]  ;# MGTYRXP1_227 GTYE4_CHANNEL_X1Y29
set_property PACKAGE_PIN AH7 [get_ports {pci_exp_txp[2]}]  ;# MGTYTXP1_227
set_property PACKAGE_PIN AJ4 [get_ports {pci_exp_rxp[3]}]  ;# MGTYRXP0_227 GTYE4_CHANNEL_X1Y28
set_property PACKAGE_PIN AJ9 [get_ports {pci_exp_txp[3]}]  ;# MGTYTXP0_227
set_property PACKAGE_PIN AK2 [get_ports {pci_exp_rxp[4]}]  ;# MGTYRXP3_226 GTYE4_CHANNEL_X1Y27
set_property PACKAGE_PIN AK7 [get_ports {pci_exp_txp[4]}]  ;# MGTYTXP3_226
set_property PACKAGE_PIN AL4 [get_ports {pci_exp_rxp[5]}]  ;# MGTYRXP2_226 GTYE4_CHANNEL_X1Y26
set_property PACKAGE_PIN AL9 [get_ports {pci_exp_txp[5]}]  ;# MGTYTXP2_226
set_property PACKAGE_PIN AM2 [get_ports {pci_exp_rxp[6]}]  ;# MGTYRXP1_226 GTYE4_CHANNEL_X1Y25
set_property PACKAGE_PIN AM7 [get_ports {pci_exp_txp[6]}]  ;# MGTYTXP1_226
set_property PACKAGE_PIN AN4 [get_ports {pci_exp_rxp[7]}]  ;# MGTYRXP0_226 GTYE4_CHANNEL_X1Y24
set_property PACKAGE_PIN AN9 [get_ports {pci_exp_txp[7]}]  ;# MGTYTXP0_226
set_property PACKAGE_PIN AP2 [get_ports {pci_exp_rxp[8]}]  ;# MGTYRXP3_225 GTYE4_CHANNEL_X1Y23
set_property PACKAGE_PIN AP7 [get_ports {pci_exp_txp[8]}]  ;# MGTYTXP3_225
set_property PACKAGE_PIN AR4 [get_ports {pci_exp_rxp[9]}]  ;# MGTYRXP2_225 GTYE4_CHANNEL_X1Y22
set_property PACKAGE_PIN AR9 [get_ports {pci_exp_txp[9]}]  ;# MGTYTXP2_225
set_property PACKAGE_PIN AT2 [get_ports {pci_exp_rxp[10]}] ;# MGTYRXP1_225 GTYE4_CHANNEL_X1Y21
set_property PACKAGE_PIN AT7 [get_ports {pci_exp_txp[10]}] ;# MGTYTXP1_225
set_property PACKAGE_PIN AU4 [get_ports {pci_exp_rxp[11]}] ;# MGTYRXP0_225 GTYE4_CHANNEL_X1Y20
set_property PACKAGE_PIN AU9 [get_ports {pci_exp_txp[11]}] ;# MGTYTXP0_225
set_property PACKAGE_PIN AV2 [get_ports {pci_exp_rxp[12]}] ;# MGTYRXP3_224 GTYE4_CHANNEL_X1Y19
set_property PACKAGE_PIN AV7 [get_ports {pci_exp_txp[12]}] ;# MGTYTXP3_224
set_property PACKAGE_PIN AW4 [get_ports {pci_exp_rxp[13]}] ;# MGTYRXP2_224 GTYE4_CHANNEL_X1Y18
set_property PACKAGE_PIN BB5 [get_ports {pci_exp_txp[13]}] ;# MGTYTXP2_224
set_property PACKAGE_PIN BA2 [get_ports {pci_exp_rxp[14]}] ;# MGTYRXP1_224 GTYE4_CHANNEL_X1Y17
set_property PACKAGE_PIN BD5 [get_ports {pci_exp_txp[14]}] ;# MGTYTXP1_224
set_property PACKAGE_PIN BC2 [get_ports {pci_exp_rxp[15]}] ;# MGTYRXP0_224 GTYE4_CHANNEL_X1Y16
set_property PACKAGE_PIN BF5 [get_ports {pci_exp_txp[15]}] ;# MGTYTXP0_224

# ---- clocks: axi_aclk (250 MHz) is generated and constrained by the XDMA IP's own XDC from pcie_refclk;
# the engine and the bridge run on it, so no clock crossing exists in the user logic.

# ---- resets: PERST# is asynchronous; the user reset is axi_aresetn re-registered twice in the top.
set_false_path -from [get_ports pcie_perst_n]
set_false_path -to   [get_pins -quiet rst_q_reg/D]
