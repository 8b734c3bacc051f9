// Binary matrix-vector unit with FINN's MVAU folding semantics (PE output lanes, SIMD input lanes),
// pipelined so that no register-to-register path holds more than a few logic levels.
//
// Per input vector: NF = MH/PE neuron folds x SF = MW/SIMD synapse folds, one step per cycle.
// The first neuron fold reads the SF input beats from in_* and keeps them; the other folds
// replay them. Every step consumes one weight word (PE x SIMD bits) from w_*: FINN's decoupled /
// external weight stream, so a weight ROM, FINN's memstream or a DDR stream feeds it unchanged.
//
//   IN_BITS == 1: XNOR + popcount (binary activations, 1-bit weights, bit 1 = +1): out = #matches
//   IN_BITS  > 1: unsigned IN_BITS-bit inputs times signed W_BITS-bit weights (FINN narrows the
//                 first layer's bipolar weights to INT2): out = sum(w * x)
//
// Pipeline (one step per cycle, a valid bit per stage, no stall inside):
//   issue   : input select (fresh beat or the replay buffer) and weight word into registers;
//   leaves  : per PE, NL = SIMD / GROUP leaf sums: the popcount of GROUP XNOR lanes, or for the first
//             layer each lane's term chosen from {0, +v, -v, -2v} (GROUP = 1);
//   tree    : a balanced adder tree over the leaves, a register every TREE_PER_STAGE levels;
//   acc     : the step's sum into the PE accumulator (cleared at the first synapse fold);
//   output  : the finished accumulators into an output queue (OQ entries).
// GROUP and TREE_PER_STAGE set the logic depth per stage; the build chooses them from the clock
// (bdnn_hw.timing.pipeline). The output queue is deep enough for every output in flight, and a step
// that finishes an output is issued only while the queue has a free place for it (a credit count of
// registers), so back-pressure never stops a stage: throughput stays one step per cycle.
//
// WEIGHTS = "rom": the weights are in the unit (bnn_rom, W_INIT / W_STYLE), read at the step's own
// address counter and used three cycles later (the input side waits two registers), so there
// is no weight stream, handshake or queue: what a weight word queue would cost in LUT RAM (about
// 0.7 LUT per bit of a word) is a few flip-flops per input lane. The w_* port is then unused.
//
// Output beats carry PE accumulators of OUT_BITS each, lane 0 in the low bits (FINN's packing).
// Weight lane s of PE p is bits (p*SIMD + s)*W_BITS of the weight word.
module bnn_mvau #(
	int unsigned  MW = 64,
	int unsigned  MH = 64,
	int unsigned  SIMD = 8,
	int unsigned  PE = 4,
	int unsigned  IN_BITS = 1,
	int unsigned  OUT_BITS = 8,
	int unsigned  W_BITS = 1,
	int unsigned  GROUP = 0,            // lanes per leaf sum (0: all SIMD lanes in one leaf)
	int unsigned  TREE_PER_STAGE = 2,   // adder-tree levels between registers
	parameter string  WEIGHTS = "stream",   // "stream" (the w_* port) or "rom" (in the unit)
	parameter string  W_INIT = "",          // rom: the weight words in FINN's stream order (hex)
	parameter string  W_STYLE = "auto",     // rom: "block", "distributed" or "auto"
	int unsigned  IN_WIDTH = ((SIMD*IN_BITS+7)/8)*8,
	int unsigned  W_WIDTH = ((PE*SIMD*W_BITS+7)/8)*8,
	int unsigned  OUT_WIDTH = ((PE*OUT_BITS+7)/8)*8
)(
	input	logic  clk,
	input	logic  rst_n,

	input	logic [IN_WIDTH-1:0]  in_tdata,
	input	logic  in_tvalid,
	output	logic  in_tready,

	input	logic [W_WIDTH-1:0]  w_tdata,
	input	logic  w_tvalid,
	output	logic  w_tready,

	output	logic [OUT_WIDTH-1:0]  out_tdata,
	output	logic  out_tvalid,
	input	logic  out_tready
);
	localparam int unsigned  SF = MW / SIMD;
	localparam int unsigned  NF = MH / PE;
	localparam int unsigned  ACC_BITS = $clog2(MW * (2**IN_BITS) * (2**W_BITS)) + 2;
	localparam int unsigned  SF_BITS = SF > 1 ? $clog2(SF) : 1;
	localparam int unsigned  NF_BITS = NF > 1 ? $clog2(NF) : 1;
	localparam int unsigned  G = (GROUP == 0 || GROUP > SIMD) ? SIMD : GROUP;
	localparam int unsigned  NL = (SIMD + G - 1) / G;                 // leaves per PE
	localparam int unsigned  LEVELS = NL > 1 ? $clog2(NL) : 0;        // adder-tree levels
	localparam int unsigned  TPS = TREE_PER_STAGE > 0 ? TREE_PER_STAGE : 1;
	localparam int unsigned  TREE_REGS = (LEVELS + TPS - 1) / TPS;
	// issue -> leaves -> tree registers -> accumulator -> queue write; the credit returns two cycles
	// after the queue write at the earliest (queue count, then the pop)
	localparam bit  ROM = WEIGHTS == "rom";
	localparam int unsigned  LATENCY = 3 + TREE_REGS + (ROM ? 2 : 0);
	localparam int unsigned  OQ = (LATENCY + 2 + SF - 1) / SF + 1;
	localparam int unsigned  OQ_BITS = $clog2(OQ + 1);
	// leaf sums: XNOR popcounts are unsigned (one spare bit keeps them signed-safe); terms signed
	localparam int unsigned  LEAF_BITS = IN_BITS == 1 ? $clog2(G + 1) + 1 : ACC_BITS;

	initial begin
		if (MW % SIMD != 0 || MH % PE != 0) $error("bnn_mvau: SIMD must divide MW and PE must divide MH");
		if (IN_BITS == 1 && W_BITS != 1) $error("bnn_mvau: XNOR mode needs 1-bit weights");
		if (IN_BITS > 1 && W_BITS > 2) $error("bnn_mvau: the first layer's weights must be INT2 (bipolar narrowed by FINN)");
		if (WEIGHTS != "stream" && WEIGHTS != "rom") $error("bnn_mvau: WEIGHTS must be \"stream\" or \"rom\"");
	end

	// ---- issue: counters, credit, input select -----------------------------------------------
	logic [SF_BITS-1:0]  sf;
	logic [NF_BITS-1:0]  nf;
	logic [OQ_BITS-1:0]  outs;          // outputs issued and not yet taken from the queue
	wire  last_sf = (sf == SF_BITS'(SF-1));
	wire  room = (outs < OQ_BITS'(OQ));
	wire  w_ok = ROM || w_tvalid;         // the unit's own weights are always there
	wire  step = w_ok && ((nf != 0) || in_tvalid) && (!last_sf || room);
	assign  in_tready = (nf == 0) && w_ok && (!last_sf || room);
	assign  w_tready = !ROM && ((nf != 0) || in_tvalid) && (!last_sf || room);
	wire  pop = out_tvalid && out_tready;

	logic [SIMD*IN_BITS-1:0]  ibuf [SF];  // the vector's SF beats, replayed for the other folds
	logic [SIMD*IN_BITS-1:0]  x0;
	logic [SF_BITS-1:0]  sf0;
	logic  fresh0;                         // the registered step read a fresh beat
	always_ff @(posedge clk) begin
		sf0 <= sf;
		fresh0 <= rst_n && step && (nf == 0);
	end
	if (SF > 1) begin : g_ibuf_late
		// written a cycle after its step from the registered beat, so the LUT RAM's write enable comes
		// from a register; the same entry is read again SF >= 2 steps later at the earliest
		always_ff @(posedge clk) if (fresh0) ibuf[sf0] <= x0;
	end
	else begin : g_ibuf_reg
		// one entry (a register): the next fold reads it in the very next step
		always_ff @(posedge clk) if (step && nf == 0) ibuf[0] <= in_tdata[SIMD*IN_BITS-1:0];
	end

	logic [PE*SIMD*W_BITS-1:0]  w0;
	logic  v0, first0, last0;
	always_ff @(posedge clk) begin
		x0 <= (nf == 0) ? in_tdata[SIMD*IN_BITS-1:0] : ibuf[sf];
		w0 <= w_tdata[PE*SIMD*W_BITS-1:0];
	end
	always_ff @(posedge clk) {first0, last0} <= rst_n ? {sf == 0, last_sf} : 2'b0;

	// what the leaves take: the issue registers, or with the weights in the unit those two registers
	// later, beside the word read at the step's address (bnn_rom: three cycles)
	logic [SIMD*IN_BITS-1:0]  xl;
	logic [PE*SIMD*W_BITS-1:0]  wl;
	logic  vl, firstl, lastl;
	if (ROM) begin : g_rom
		localparam int unsigned  WD = SF * NF;
		localparam int unsigned  WA = WD > 1 ? $clog2(WD) : 1;
		logic [WA-1:0]  waddr;
		always_ff @(posedge clk) begin
			if (!rst_n) waddr <= '0;
			else if (step) waddr <= (waddr == WA'(WD - 1)) ? '0 : waddr + 1;
		end
		bnn_rom #(.WIDTH(PE*SIMD*W_BITS), .DEPTH(WD), .INIT_FILE(W_INIT), .RAM_STYLE(W_STYLE)) rom (
			.clk, .addr(waddr), .q(wl));
		logic [SIMD*IN_BITS-1:0]  x1;
		logic  v1, first1, last1;
		always_ff @(posedge clk) {xl, x1} <= {x1, x0};
		always_ff @(posedge clk) {vl, firstl, lastl, v1, first1, last1} <= rst_n ? {v1, first1, last1, v0, first0, last0} : 6'b0;
	end
	else begin : g_stream
		assign  xl = x0;
		assign  wl = w0;
		assign  {vl, firstl, lastl} = {v0, first0, last0};
	end

	always_ff @(posedge clk) begin
		if (!rst_n) begin
			sf <= '0;
			nf <= '0;
			outs <= '0;
			v0 <= 1'b0;
		end
		else begin
			v0 <= step;
			outs <= outs + OQ_BITS'(step && last_sf) - OQ_BITS'(pop);
			if (step) begin
				if (last_sf) begin
					sf <= '0;
					nf <= (nf == NF_BITS'(NF-1)) ? '0 : nf + 1;
				end
				else sf <= sf + 1;
			end
		end
	end

	// ---- leaves -------------------------------------------------------------------------------
	function automatic logic signed [LEAF_BITS-1:0] leaf(input logic [SIMD*IN_BITS-1:0] xv,
	                                                    input logic [SIMD*W_BITS-1:0] wv, input int unsigned k);
		logic signed [LEAF_BITS-1:0]  s;
		s = '0;
		for (int unsigned i = k * G; i < (k + 1) * G && i < SIMD; i++) begin
			if (IN_BITS == 1) begin
				logic  match;  // 1-bit first: inside a wider context ~^ would also invert the zero-extension
				match = xv[i] ~^ wv[i];
				s += LEAF_BITS'(match);
			end
			else begin
				logic signed [LEAF_BITS-1:0]  v;
				logic [1:0]  wc;   // W_BITS wide select: in XNOR mode (dead code here) a vector may be 1 bit
				v = LEAF_BITS'($unsigned(xv[i*IN_BITS +: IN_BITS]));
				wc = 2'(wv[i*W_BITS +: W_BITS]);
				unique case (wc)   // {-2,-1,0,1}: a choice of term, no multiplier
					2'b01:   s += v;
					2'b11:   s -= v;
					2'b10:   s -= v <<< 1;
					default: ;
				endcase
			end
		end
		return s;
	endfunction

	// ---- adder tree: level 0 = the registered leaves, level LEVELS = one sum per PE ------------
	for (genvar l = 0; l <= LEVELS; l++) begin : g_lvl
		localparam int unsigned  N = (NL + (1 << l) - 1) >> l;          // nodes at this level
		localparam int unsigned  W = IN_BITS == 1 ? LEAF_BITS + l : ACC_BITS;
		localparam bit  REG = (l == 0) || (l % TPS == 0) || (l == LEVELS);
		logic signed [W-1:0]  node [PE][N];
		logic  v, first, last;
		if (l == 0) begin : g_leaf
			always_ff @(posedge clk) begin
				for (int unsigned p = 0; p < PE; p++)
					for (int unsigned k = 0; k < N; k++)
						node[p][k] <= W'(leaf(xl, wl[p*SIMD*W_BITS +: SIMD*W_BITS], k));
			end
			// the stage flags carry a reset: a reset-free chain of them would become an SRL (1.5 ns clock-to-out)
			always_ff @(posedge clk) {v, first, last} <= rst_n ? {vl, firstl, lastl} : 3'b0;
		end
		else begin : g_sum
			localparam int unsigned  PN = (NL + (1 << (l - 1)) - 1) >> (l - 1);   // nodes one level down
			logic signed [W-1:0]  s [PE][N];
			always_comb begin
				for (int unsigned p = 0; p < PE; p++)
					for (int unsigned k = 0; k < N; k++)
						s[p][k] = W'(g_lvl[l-1].node[p][2*k]) +
						          ((2*k + 1 < PN) ? W'(g_lvl[l-1].node[p][2*k+1]) : W'(0));
			end
			if (REG) begin : g_reg
				always_ff @(posedge clk) begin
					node <= s;
				end
				always_ff @(posedge clk) {v, first, last} <= rst_n ? {g_lvl[l-1].v, g_lvl[l-1].first, g_lvl[l-1].last} : 3'b0;
			end
			else begin : g_comb
				assign  node = s;
				assign  v = g_lvl[l-1].v;
				assign  first = g_lvl[l-1].first;
				assign  last = g_lvl[l-1].last;
			end
		end
	end

	// ---- accumulate, then the output queue ---------------------------------------------------
	logic signed [ACC_BITS-1:0]  acc [PE];
	logic  push;
	always_ff @(posedge clk) begin
		if (g_lvl[LEVELS].v)
			for (int unsigned p = 0; p < PE; p++)
				acc[p] <= (g_lvl[LEVELS].first ? ACC_BITS'(0) : acc[p]) + ACC_BITS'(g_lvl[LEVELS].node[p][0]);
	end
	always_ff @(posedge clk) push <= rst_n && g_lvl[LEVELS].v && g_lvl[LEVELS].last;

	logic [PE*OUT_BITS-1:0]  qin;
	always_comb for (int unsigned p = 0; p < PE; p++) qin[p*OUT_BITS +: OUT_BITS] = OUT_BITS'(acc[p]);

	logic [OUT_WIDTH-1:0]  qin_w;
	assign  qin_w = OUT_WIDTH'(qin);
	logic  q_ready;
	logic [$clog2(OQ+1)-1:0]  q_max, q_cur;
	stream_fifo #(.WIDTH(OUT_WIDTH), .DEPTH(OQ), .BITS(PE*OUT_BITS)) queue (
		.clk, .rst_n, .limit($clog2(OQ+1)'(OQ)),
		.in_tdata(qin_w), .in_tvalid(push), .in_tready(q_ready),
		.out_tdata, .out_tvalid, .out_tready,
		.max_count(q_max), .cur_count(q_cur));
endmodule
