// Read-only memory with three registered read stages: q = mem[addr] three cycles later (a copy of
// the address, the memory's read register, its output register: the block RAM's DO_REG). Reads
// every cycle; no enable, so no handshake ever reaches its address or data registers.
// The address copy keeps the producer's next-address logic out of the read: without it, synthesis
// folds the address register into the memory's read port and computes the read from the next
// address (yosys: a 48-word LUT ROM went from one LUT6 per bit behind a register to 4 LUT levels
// behind the address counter's adder).
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
	localparam int unsigned  LATENCY = 3;    // what the users of q align to (bnn_mvau, bnn_weight_rom)
	logic [A-1:0]  aq;
	logic [WIDTH-1:0]  r1;
	always_ff @(posedge clk) aq <= addr;
	// one branch per style: the attribute must be a literal on the memory itself
	if (RAM_STYLE == "distributed") begin : g_lutram
		(* rom_style = `BDNN_LUT_ROM *) logic [WIDTH-1:0]  mem [DEPTH];
		initial $readmemh(INIT_FILE, mem);
		always_ff @(posedge clk) r1 <= mem[aq];
	end
	else if (RAM_STYLE == "block") begin : g_bram
		(* rom_style = "block" *) logic [WIDTH-1:0]  mem [DEPTH];
		initial $readmemh(INIT_FILE, mem);
		always_ff @(posedge clk) r1 <= mem[aq];
	end
	else begin : g_auto
		logic [WIDTH-1:0]  mem [DEPTH];
		initial $readmemh(INIT_FILE, mem);
		always_ff @(posedge clk) r1 <= mem[aq];
	end
	always_ff @(posedge clk) q <= r1;
endmodule
