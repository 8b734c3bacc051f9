// Synchronous AXI-stream FIFO for the stitched design (DEPTH >= 2), with a high-water mark so
// simulation can size it: max_count is the largest occupancy seen since reset.
// limit caps the occupancy (1..DEPTH): a synthesized design ties it to DEPTH (constant-folded away);
// the FIFO-sizing simulation drives it from a run-time setting, so one compiled simulator with
// deep FIFOs tries every candidate depth (a FIFO capped at L behaves exactly like one of depth L).
// BLOCK = 1 stores the entries behind the head in a synchronously read memory (block RAM) and keeps
// the head in a register; its ports behave cycle for cycle like BLOCK = 0 (an asynchronously read
// memory, LUT RAM), so the storage can be chosen per FIFO after sizing without changing the timing.
// BITS (<= WIDTH) are the bits of a beat that carry data: AXI pads a stream to whole bytes (a 1-bit
// stream travels in 8-bit beats), and only the data bits are stored; the padding comes out as 0.
module stream_fifo #(
	int unsigned  WIDTH = 8,
	int unsigned  DEPTH = 2,
	bit  BLOCK = 0,
	int unsigned  BITS = WIDTH
)(
	input	logic  clk,
	input	logic  rst_n,
	input	logic [$clog2(DEPTH+1)-1:0]  limit,

	input	logic [WIDTH-1:0]  in_tdata,
	input	logic  in_tvalid,
	output	logic  in_tready,

	output	logic [WIDTH-1:0]  out_tdata,
	output	logic  out_tvalid,
	input	logic  out_tready,

	output	logic [$clog2(DEPTH+1)-1:0]  max_count,
	output	logic [$clog2(DEPTH+1)-1:0]  cur_count
);
	localparam int unsigned  A = DEPTH > 1 ? $clog2(DEPTH) : 1;
	localparam int unsigned  C = $clog2(DEPTH+1);
	logic [A-1:0]  rd, wr;
	logic [C-1:0]  count;
	assign  in_tready = (count < limit);
	assign  cur_count = count;
	assign  out_tvalid = (count != 0);
	wire  push = in_tvalid && in_tready;
	wire  pop = out_tvalid && out_tready;
	always_ff @(posedge clk) begin
		if (!rst_n) begin
			rd <= '0;
			wr <= '0;
			count <= '0;
			max_count <= '0;
		end
		else begin
			if (push) wr <= (wr == A'(DEPTH-1)) ? '0 : wr + 1;
			if (pop) rd <= (rd == A'(DEPTH-1)) ? '0 : rd + 1;
			count <= count + C'(push) - C'(pop);
			if (count + C'(push) - C'(pop) > max_count) max_count <= count + C'(push) - C'(pop);
		end
	end

	logic [BITS-1:0]  in_bits, out_bits;
	assign  in_bits = in_tdata[BITS-1:0];
	assign  out_tdata = WIDTH'(out_bits);

	if (!BLOCK) begin : g_lutram
		logic [BITS-1:0]  mem [DEPTH];
		always_ff @(posedge clk) if (push) mem[wr] <= in_bits;
		assign  out_bits = mem[rd];
	end
	else begin : g_block
		// head register (loaded from the memory or, when that is empty, straight from the input)
		// + memory with the rest; head empty implies memory empty, so out_tvalid = (count != 0)
		(* ram_style = "block" *) logic [BITS-1:0]  mem [DEPTH];
		logic [A-1:0]  mrd, mwr;
		logic [C-1:0]  mcount;
		logic  sel;
		logic [BITS-1:0]  mem_q, byp_q;
		wire  head_free = !out_tvalid || out_tready;
		wire  from_mem = head_free && (mcount != 0);
		wire  bypass = push && head_free && (mcount == 0);
		wire  to_mem = push && !bypass;
		always_ff @(posedge clk) if (to_mem) mem[mwr] <= in_bits;
		always_ff @(posedge clk) if (from_mem) mem_q <= mem[mrd];
		always_ff @(posedge clk) if (bypass) byp_q <= in_bits;
		always_ff @(posedge clk) begin
			if (!rst_n) begin
				mrd <= '0;
				mwr <= '0;
				mcount <= '0;
				sel <= 1'b0;
			end
			else begin
				if (to_mem) mwr <= (mwr == A'(DEPTH-1)) ? '0 : mwr + 1;
				if (from_mem) mrd <= (mrd == A'(DEPTH-1)) ? '0 : mrd + 1;
				mcount <= mcount + C'(to_mem) - C'(from_mem);
				if (from_mem) sel <= 1'b1;
				else if (bypass) sel <= 1'b0;
			end
		end
		assign  out_bits = sel ? mem_q : byp_q;
	end
endmodule
