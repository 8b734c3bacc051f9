// On-chip weight memory as an AXI stream: DEPTH words of WIDTH bits, streamed in order and
// repeated forever, exactly what bnn_mvau's weight port consumes (FINN's decoupled weight order).
//
// Unlike FINN's memstream (an AXI-lite-writable memory with a multi-stage output pipeline, which
// costs several word-wide registers per layer), this is a read-only memory:
//   address register -> bnn_rom (address copy, read register, output register) -> queue.
// Reads are issued on credit: at most QDEPTH words are in flight or queued, counted in a register,
// so the consumer's ready reaches only the queue's read side, never the memory's address or a
// word-wide clock enable, and the stream still delivers one word per cycle.
// The memory itself is bnn_rom (two registered read stages).
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
	// a read is in flight for three cycles, the queue shows it a cycle later and a pop frees its
	// credit the cycle after: five credits keep one word per cycle flowing
	localparam int unsigned  QDEPTH = 5;
	localparam int unsigned  QB = $clog2(QDEPTH + 1);
	logic [A-1:0]  addr;
	logic [QB-1:0]  used;
	wire  issue = used < QB'(QDEPTH);
	wire  pop = out_tvalid && out_tready;
	logic  v1, v2, v3;
	logic [WIDTH-1:0]  r2;

	always_ff @(posedge clk) begin
		if (!rst_n) begin
			addr <= '0;
			used <= '0;
			{v1, v2, v3} <= 3'b0;
		end
		else begin
			if (issue) addr <= (addr == A'(DEPTH-1)) ? '0 : addr + 1;
			used <= used + QB'(issue) - QB'(pop);
			{v1, v2, v3} <= {issue, v1, v2};
		end
	end

	bnn_rom #(.WIDTH(WIDTH), .DEPTH(DEPTH), .INIT_FILE(INIT_FILE), .RAM_STYLE(RAM_STYLE)) rom (
		.clk, .addr, .q(r2));

	logic  q_ready;
	logic [QB-1:0]  q_max, q_cur;
	stream_fifo #(.WIDTH(WIDTH), .DEPTH(QDEPTH)) queue (
		.clk, .rst_n, .limit(QB'(QDEPTH)),
		.in_tdata(r2), .in_tvalid(v3), .in_tready(q_ready),
		.out_tdata, .out_tvalid, .out_tready,
		.max_count(q_max), .cur_count(q_cur));
endmodule
