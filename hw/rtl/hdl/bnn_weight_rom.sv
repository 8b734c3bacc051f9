// On-chip weight memory as an AXI stream: DEPTH words of WIDTH bits, streamed in order and
// repeated forever, exactly what bnn_mvau's weight port consumes (FINN's decoupled weight order).
//
// Unlike FINN's memstream (an AXI-lite-writable memory with a multi-stage output pipeline, which
// costs several word-wide registers per layer), this is a read-only memory with one output register:
// the next address is read while the current word is taken, so it streams one word per cycle.
// RAM_STYLE ("block", "distributed" or "auto") is the placement config's choice, passed to synthesis
// as the memory's rom_style attribute.
`ifdef BDNN_YOSYS
// yosys's LUTRAM cells need a write port: a read-only memory in LUTs is its "logic" style (LUT6 as ROM)
`define BDNN_LUT_ROM "logic"
`else
`define BDNN_LUT_ROM "distributed"
`endif
module bnn_weight_rom #(
	int unsigned  WIDTH = 8,
	int unsigned  DEPTH = 2,
	parameter string  INIT_FILE = "",
	parameter string  RAM_STYLE = "auto"
)(
	input	logic  clk,
	input	logic  rst_n,

	output	logic [WIDTH-1:0]  out_tdata,
	output	logic  out_tvalid,
	input	logic  out_tready
);
	localparam int unsigned  A = DEPTH > 1 ? $clog2(DEPTH) : 1;
	logic [A-1:0]  addr;
	wire  take = out_tvalid && out_tready;
	wire [A-1:0]  next = (addr == A'(DEPTH-1)) ? '0 : addr + 1;
	wire [A-1:0]  raddr = take ? next : addr;  // read ahead: the word after a taken one is ready next cycle

	always_ff @(posedge clk) begin
		if (!rst_n) begin
			addr <= '0;
			out_tvalid <= 1'b0;
		end
		else begin
			out_tvalid <= 1'b1;
			if (take) addr <= next;
		end
	end

	// one branch per style: the attribute must be a literal on the memory itself
	if (RAM_STYLE == "distributed") begin : g_lutram
		(* rom_style = `BDNN_LUT_ROM *) logic [WIDTH-1:0]  mem [DEPTH];
		initial $readmemh(INIT_FILE, mem);
		always_ff @(posedge clk) out_tdata <= mem[raddr];
	end
	else if (RAM_STYLE == "block") begin : g_bram
		(* rom_style = "block" *) logic [WIDTH-1:0]  mem [DEPTH];
		initial $readmemh(INIT_FILE, mem);
		always_ff @(posedge clk) out_tdata <= mem[raddr];
	end
	else begin : g_auto
		logic [WIDTH-1:0]  mem [DEPTH];
		initial $readmemh(INIT_FILE, mem);
		always_ff @(posedge clk) out_tdata <= mem[raddr];
	end
endmodule
