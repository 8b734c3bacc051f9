// Read-only memory with two registered read stages: q = mem[addr] two cycles later (the memory's
// read register, then its output register: the block RAM's DO_REG). Reads every cycle; no enable,
// so no handshake ever reaches its address or data registers.
// RAM_STYLE ("block", "distributed" or "auto") is the placement config's choice, passed to synthesis
// as the memory's rom_style attribute.
`ifdef BDNN_YOSYS
// yosys's LUTRAM cells need a write port: a read-only memory in LUTs is its "logic" style (LUT6 as ROM)
`define BDNN_LUT_ROM "logic"
`else
`define BDNN_LUT_ROM "distributed"
`endif
module bnn_rom #(
	int unsigned  WIDTH = 8,
	int unsigned  DEPTH = 2,
	parameter string  INIT_FILE = "",
	parameter string  RAM_STYLE = "auto",
	int unsigned  A = DEPTH > 1 ? $clog2(DEPTH) : 1
)(
	input	logic  clk,
	input	logic [A-1:0]  addr,
	output	logic [WIDTH-1:0]  q
);
	logic [WIDTH-1:0]  r1;
	// one branch per style: the attribute must be a literal on the memory itself
	if (RAM_STYLE == "distributed") begin : g_lutram
		(* rom_style = `BDNN_LUT_ROM *) logic [WIDTH-1:0]  mem [DEPTH];
		initial $readmemh(INIT_FILE, mem);
		always_ff @(posedge clk) r1 <= mem[addr];
	end
	else if (RAM_STYLE == "block") begin : g_bram
		(* rom_style = "block" *) logic [WIDTH-1:0]  mem [DEPTH];
		initial $readmemh(INIT_FILE, mem);
		always_ff @(posedge clk) r1 <= mem[addr];
	end
	else begin : g_auto
		logic [WIDTH-1:0]  mem [DEPTH];
		initial $readmemh(INIT_FILE, mem);
		always_ff @(posedge clk) r1 <= mem[addr];
	end
	always_ff @(posedge clk) q <= r1;
endmodule
