// Binary matrix-vector-threshold unit that reuses every external weight word across a batch.
//
// FINN's external-weight MVAU needs the whole weight matrix once per output pixel of every crop
// (reps = OFM_DIM^2): a 3x3 conv on a 5x5 map re-reads it 25 times per crop. This unit keeps the
// layer's (padded) input map of B crops on chip and makes the windows itself, so each weight word
// (PE x SIMD bits, FINN's weight stream order: neuron fold nf major, synapse fold sf minor) arrives
// once per batch and is applied to all B * OFM_DIM^2 windows before the next one is taken:
// DDR traffic per crop = matrix / B. A fully connected layer is the case IFM_DIM = K = OFM_DIM = 1.
//
// Per batch (B crops):
//   fill    : B * IFM_DIM^2 * CF input beats (SIMD channels each, pixel-major, CF = C / SIMD)
//             into one bank of a ping-pong input buffer (block RAM), while the other is computed;
//   compute : for nf, for sf = (ky, kx, cf), for every window j = (b, oy, ox): one cycle;
//             popcounts accumulate per window in a small LUT RAM (B * OFM_DIM^2 x PE accumulators);
//             at the last sf the PE sums are compared with the thresholds (out = sum >= T, FINN's
//             single-step Thresholding) and the PE output bits stored in a ping-pong output buffer;
//   drain   : the output buffer in FINN's MVAU order (window-major, nf minor; PE bits per beat).
// Cycles per batch: NF * SF * B * OFM_DIM^2 (the same steps as FINN's MVAU, reordered), fill and
// drain overlapped. Stride 1; SIMD must divide C (a word never spans two pixels).
//
// The compute is a pipeline with a valid bit per stage and no stall inside (a step enters it only
// when both buffers have room): address in two registered stages, the input-buffer read, the
// XNOR popcount as leaf sums of GROUP lanes and an adder tree with a register every TREE_PER_STAGE
// levels (as bnn_mvau), the accumulator read, the accumulate (and its write), the threshold
// compare, the output-buffer write. An accumulator entry recurs only every B * OFM_DIM^2 steps: it is
// read one stage before its write, which is safe from two windows per batch on; with one (a fully
// connected layer at B = 1) the accumulate forwards its own result to the next step.
module bnn_mvtu_replay #(
	int unsigned  C = 64,            // input channels per pixel
	int unsigned  IFM_DIM = 7,       // input map side, padding included
	int unsigned  K = 3,
	int unsigned  OFM_DIM = 5,
	int unsigned  MH = 64,
	int unsigned  SIMD = 8,
	int unsigned  PE = 4,
	int unsigned  B = 5,             // crops per batch: each weight word is used B * OFM_DIM^2 times
	int unsigned  T_BITS = 16,       // unsigned thresholds, clipped to [0, MW + 1]
	parameter string  THRESH_FILE = "",   // NF lines of PE thresholds, lane 0 in the low bits (hex)
	int unsigned  GROUP = 0,             // XNOR lanes per leaf sum (0: all SIMD lanes in one leaf)
	int unsigned  TREE_PER_STAGE = 2,    // adder-tree levels between registers
	int unsigned  IN_WIDTH = ((SIMD+7)/8)*8,
	int unsigned  W_WIDTH = ((PE*SIMD+7)/8)*8,
	int unsigned  OUT_WIDTH = ((PE+7)/8)*8
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
	localparam int unsigned  CF = C / SIMD;
	localparam int unsigned  MW = K * K * C;
	localparam int unsigned  NF = MH / PE;
	localparam int unsigned  NPIX = IFM_DIM * IFM_DIM;
	localparam int unsigned  JN = B * OFM_DIM * OFM_DIM;        // windows per batch
	localparam int unsigned  IB_DEPTH = B * NPIX * CF;          // words per input bank
	localparam int unsigned  OB_DEPTH = JN * NF;                // words per output bank
	localparam int unsigned  ACC_BITS = $clog2(MW + 1);
	localparam int unsigned  IA_BITS = $clog2(2 * IB_DEPTH);
	localparam int unsigned  OA_BITS = $clog2(2 * OB_DEPTH);
	localparam int unsigned  J_BITS = JN > 1 ? $clog2(JN) : 1;
	// loop counter widths and last values
	localparam int unsigned  OW = OFM_DIM > 1 ? $clog2(OFM_DIM) : 1;
	localparam int unsigned  BW = B > 1 ? $clog2(B) : 1;
	localparam int unsigned  CW = CF > 1 ? $clog2(CF) : 1;
	localparam int unsigned  KW = K > 1 ? $clog2(K) : 1;
	localparam int unsigned  NW = NF > 1 ? $clog2(NF) : 1;
	localparam logic [OW-1:0]  O_LAST = OW'(OFM_DIM - 1);
	localparam logic [BW-1:0]  B_LAST = BW'(B - 1);
	localparam logic [CW-1:0]  C_LAST = CW'(CF - 1);
	localparam logic [KW-1:0]  K_LAST = KW'(K - 1);
	localparam logic [NW-1:0]  N_LAST = NW'(NF - 1);

	initial begin
		if (C % SIMD != 0 || MH % PE != 0) $error("bnn_mvtu_replay: SIMD must divide C and PE must divide MH");
		if (IFM_DIM != OFM_DIM + K - 1) $error("bnn_mvtu_replay: IFM_DIM must be OFM_DIM + K - 1 (stride 1, padding in the input)");
		if (T_BITS < $clog2(MW + 2)) $error("bnn_mvtu_replay: T_BITS must hold MW + 1");
	end

	// ---- input buffer: two banks of B padded maps (synchronous read: block RAM) ---------------
	logic [SIMD-1:0]  ib [2 * IB_DEPTH];
	logic [1:0]  ib_full;
	logic  fbank;
	logic [IA_BITS-1:0]  fcnt;
	assign  in_tready = !ib_full[fbank];
	wire  fill = in_tvalid && in_tready;
	wire  fill_last = fill && (fcnt == IA_BITS'(IB_DEPTH - 1));
	always_ff @(posedge clk) begin
		if (fill) ib[IA_BITS'(fbank ? IB_DEPTH : 0) + fcnt] <= in_tdata[SIMD-1:0];
	end

	// ---- stage 0: loop counters, input-buffer read, weight word ------------------------------
	logic  cbank, cob;                          // input bank being computed, output bank being written
	logic [OW-1:0]  ox, oy;
	logic [BW-1:0]  b;
	logic [CW-1:0]  cf;
	logic [KW-1:0]  kx, ky;
	logic [NW-1:0]  nf;
	logic [J_BITS-1:0]  j;
	logic [1:0]  ob_full;

	// each loop counter's "at its last value" (and the synapse counters' "at 0") kept as registered
	// flags beside it, so the step's conditions are ANDs of registers, never counter compares
	logic  ox_l, oy_l, b_l, cf_l, kx_l, ky_l, nf_l, cf_z, kx_z, ky_z;
	wire  j_last = ox_l && oy_l && b_l;
	wire  sf_first = cf_z && kx_z && ky_z;
	wire  sf_last = cf_l && kx_l && ky_l;
	wire  batch_last = j_last && sf_last && nf_l;
	wire  go = ib_full[cbank] && !ob_full[cob] && w_tvalid;
	assign  w_tready = go && j_last;

	// ---- address: two registered stages, then the input-buffer read --------------------------
	logic [IA_BITS-1:0]  a_pix, a_base, raddr;
	always_ff @(posedge clk) begin
		a_pix <= (IA_BITS'(oy) + IA_BITS'(ky)) * IA_BITS'(IFM_DIM) + IA_BITS'(ox) + IA_BITS'(kx);
		a_base <= IA_BITS'(cbank ? IB_DEPTH : 0) + IA_BITS'(b) * IA_BITS'(NPIX * CF) + IA_BITS'(cf);
		raddr <= a_pix * IA_BITS'(CF) + a_base;
	end
	logic [SIMD-1:0]  q, q2;
	always_ff @(posedge clk) q <= ib[raddr];
	always_ff @(posedge clk) q2 <= q;   // the block RAM's output register (clock-to-out 0.9 ns instead of 2.5)

	// the step's control travels beside its data: valid, window, neuron fold, first/last synapse
	// fold, last step of the batch, banks
	typedef struct packed {
		logic  v, first, last, blast, cbank, cob;
		logic [J_BITS-1:0]  j;
		logic [NW-1:0]  nf;
	} ctl_t;
	localparam int unsigned  G = (GROUP == 0 || GROUP > SIMD) ? SIMD : GROUP;
	localparam int unsigned  NL = (SIMD + G - 1) / G;
	localparam int unsigned  LEVELS = NL > 1 ? $clog2(NL) : 0;
	localparam int unsigned  TPS = TREE_PER_STAGE > 0 ? TREE_PER_STAGE : 1;
	localparam int unsigned  TREE_REGS = (LEVELS + TPS - 1) / TPS;
	localparam int unsigned  LEAF_BITS = $clog2(G + 1);
	// stages after issue: a_pix/a_base, raddr, q, q2, leaves, tree registers, accumulator read,
	// accumulate, compare
	localparam int unsigned  S_Q = 4, S_LEAF = 5, S_TREE = S_LEAF + TREE_REGS, S_RD = S_TREE + 1,
	                         S_ADD = S_RD + 1, S_CMP = S_ADD + 1;
	ctl_t  ctl0;
	ctl_t  ctl [1:S_CMP];
	logic [PE*SIMD-1:0]  wd [1:S_Q];   // the weight word beside its step up to the XNOR
	assign  ctl0 = '{v: go, first: sf_first, last: sf_last, blast: batch_last, cbank: cbank, cob: cob, j: j, nf: nf};
	always_ff @(posedge clk) begin
		ctl[1] <= ctl0;
		for (int unsigned k = 2; k <= S_CMP; k++) ctl[k] <= ctl[k-1];
		if (!rst_n) for (int unsigned k = 1; k <= S_CMP; k++) ctl[k].v <= 1'b0;
		wd[1] <= w_tdata[PE*SIMD-1:0];
		for (int unsigned k = 2; k <= S_Q; k++) wd[k] <= wd[k-1];
	end

	// ---- XNOR popcount: leaves, then the adder tree ------------------------------------------
	for (genvar l = 0; l <= LEVELS; l++) begin : g_lvl
		localparam int unsigned  N = (NL + (1 << l) - 1) >> l;
		localparam int unsigned  W = LEAF_BITS + l;
		localparam bit  REG = (l == 0) || (l % TPS == 0) || (l == LEVELS);
		logic [W-1:0]  node [PE][N];
		if (l == 0) begin : g_leaf
			always_ff @(posedge clk) begin
				for (int unsigned p = 0; p < PE; p++)
					for (int unsigned g = 0; g < N; g++) begin
						logic [W-1:0]  s;
						s = '0;
						for (int unsigned i = g * G; i < (g + 1) * G && i < SIMD; i++) begin
							logic  match;
							match = q2[i] ~^ wd[S_Q][p*SIMD + i];
							s += W'(match);
						end
						node[p][g] <= s;
					end
			end
		end
		else begin : g_sum
			localparam int unsigned  PN = (NL + (1 << (l - 1)) - 1) >> (l - 1);
			logic [W-1:0]  s [PE][N];
			always_comb begin
				for (int unsigned p = 0; p < PE; p++)
					for (int unsigned g = 0; g < N; g++)
						s[p][g] = W'(g_lvl[l-1].node[p][2*g]) + ((2*g + 1 < PN) ? W'(g_lvl[l-1].node[p][2*g+1]) : W'(0));
			end
			if (REG) begin : g_reg
				always_ff @(posedge clk) node <= s;
			end
			else begin : g_comb
				assign  node = s;
			end
		end
	end

	// ---- accumulator read, accumulate (and write back), threshold compare, output write ------
	logic [PE*ACC_BITS-1:0]  acc [JN];
	logic [PE*T_BITS-1:0]  thr [NF];
	initial if (THRESH_FILE != "") $readmemh(THRESH_FILE, thr);

	logic [PE*ACC_BITS-1:0]  acc_q, pc_q, sum_q, sums;
	logic [PE*T_BITS-1:0]  thr_q, thr_q2;
	always_comb for (int unsigned p = 0; p < PE; p++)
		sums[p*ACC_BITS +: ACC_BITS] = acc_q[p*ACC_BITS +: ACC_BITS] + pc_q[p*ACC_BITS +: ACC_BITS];
	always_ff @(posedge clk) begin
		// S_RD: the window's partial sums (zero at the first synapse fold), the step's popcounts
		acc_q <= ctl[S_TREE].first ? '0 : (JN == 1 && ctl[S_RD].v) ? sums : acc[ctl[S_TREE].j];
		for (int unsigned p = 0; p < PE; p++) pc_q[p*ACC_BITS +: ACC_BITS] <= ACC_BITS'(g_lvl[LEVELS].node[p][0]);
		thr_q <= thr[ctl[S_TREE].nf];
		// S_ADD
		for (int unsigned p = 0; p < PE; p++)
			sum_q[p*ACC_BITS +: ACC_BITS] <= acc_q[p*ACC_BITS +: ACC_BITS] + pc_q[p*ACC_BITS +: ACC_BITS];
		thr_q2 <= thr_q;
	end
	always_ff @(posedge clk) if (ctl[S_RD].v && !ctl[S_RD].last) acc[ctl[S_RD].j] <= sums;

	logic [PE-1:0]  obits;
	always_ff @(posedge clk)   // S_CMP: out = sum >= T, FINN's single-step Thresholding
		for (int unsigned p = 0; p < PE; p++)
			obits[p] <= T_BITS'(sum_q[p*ACC_BITS +: ACC_BITS]) >= thr_q2[p*T_BITS +: T_BITS];

	wire  v1 = ctl[S_CMP].v, last1 = ctl[S_CMP].last, blast1 = ctl[S_CMP].blast;
	wire  cbank1 = ctl[S_CMP].cbank, cob1 = ctl[S_CMP].cob;
	wire [J_BITS-1:0]  j1 = ctl[S_CMP].j;
	wire [NW-1:0]  nf1 = ctl[S_CMP].nf;
	logic [PE-1:0]  ob [2 * OB_DEPTH];
	wire [OA_BITS-1:0]  waddr_ob = OA_BITS'(cob1 ? OB_DEPTH : 0) + OA_BITS'(j1) * OA_BITS'(NF) + OA_BITS'(nf1);
	always_ff @(posedge clk) begin
		if (v1 && last1) ob[waddr_ob] <= obits;
	end

	// ---- drain: output buffer -> output queue ------------------------------------------------
	// A read is issued on a registered credit (fewer than DQ beats issued and not yet taken) and a
	// registered last-address flag, so the consumer's ready and the address compare never meet the
	// bank switch in one cycle: issue -> obq (the buffer read) -> queue of DQ beats.
	localparam int unsigned  DQ = 4;
	logic  dbank, rd1, dlast, dcredit;
	logic [OA_BITS-1:0]  dcnt;
	logic [PE-1:0]  obq;
	logic [DQ-1:0]  douts;                   // thermometer: bit i = more than i beats out
	wire  pop = out_tvalid && out_tready;
	wire  issue = ob_full[dbank] && dcredit;
	wire  issue_last = issue && dlast;
	wire [DQ-1:0]  douts_next = issue && !pop ? {douts[DQ-2:0], 1'b1} : !issue && pop ? {1'b0, douts[DQ-1:1]} : douts;
	always_ff @(posedge clk) begin
		if (issue) obq <= ob[OA_BITS'(dbank ? OB_DEPTH : 0) + dcnt];
	end
	logic [$clog2(DQ+1)-1:0]  dq_max, dq_cur;
	logic  dq_ready;
	stream_fifo #(.WIDTH(OUT_WIDTH), .DEPTH(DQ), .BITS(PE)) drain_queue (
		.clk, .rst_n, .limit(($clog2(DQ+1))'(DQ)),
		.in_tdata(OUT_WIDTH'(obq)), .in_tvalid(rd1), .in_tready(dq_ready),
		.out_tdata, .out_tvalid, .out_tready,
		.max_count(dq_max), .cur_count(dq_cur));

	always_ff @(posedge clk) begin
		if (!rst_n) begin
			ib_full <= '0;  fbank <= 0;  fcnt <= '0;
			cbank <= 0;  cob <= 0;  ob_full <= '0;
			ox <= '0;  oy <= '0;  b <= '0;  cf <= '0;  kx <= '0;  ky <= '0;  nf <= '0;  j <= '0;
			{ox_l, oy_l, b_l, cf_l, kx_l, ky_l, nf_l} <= {O_LAST == 0, O_LAST == 0, B_LAST == 0, C_LAST == 0, K_LAST == 0, K_LAST == 0, N_LAST == 0};
			{cf_z, kx_z, ky_z} <= 3'b111;
			dbank <= 0;  rd1 <= 0;  dcnt <= '0;  dlast <= OB_DEPTH == 1;  douts <= '0;  dcredit <= 1'b0;
		end
		else begin
			// fill
			if (fill) fcnt <= fill_last ? '0 : fcnt + 1;
			if (fill_last) fbank <= !fbank;

			// stage 0: the loop counters (innermost first) and their flags
			if (go) begin
				j <= j_last ? '0 : j + 1;
				ox <= ox_l ? '0 : ox + 1;
				ox_l <= ox_l ? O_LAST == 0 : ox == O_LAST - 1;
				if (ox_l) begin
					oy <= oy_l ? '0 : oy + 1;
					oy_l <= oy_l ? O_LAST == 0 : oy == O_LAST - 1;
				end
				if (ox_l && oy_l) begin
					b <= b_l ? '0 : b + 1;
					b_l <= b_l ? B_LAST == 0 : b == B_LAST - 1;
				end
				if (j_last) begin
					cf <= cf_l ? '0 : cf + 1;
					cf_l <= cf_l ? C_LAST == 0 : cf == C_LAST - 1;
					cf_z <= cf_l;
				end
				if (j_last && cf_l) begin
					kx <= kx_l ? '0 : kx + 1;
					kx_l <= kx_l ? K_LAST == 0 : kx == K_LAST - 1;
					kx_z <= kx_l;
				end
				if (j_last && cf_l && kx_l) begin
					ky <= ky_l ? '0 : ky + 1;
					ky_l <= ky_l ? K_LAST == 0 : ky == K_LAST - 1;
					ky_z <= ky_l;
				end
				if (j_last && sf_last) begin
					nf <= nf_l ? '0 : nf + 1;
					nf_l <= nf_l ? N_LAST == 0 : nf == N_LAST - 1;
				end
				if (batch_last) begin cbank <= !cbank;  cob <= !cob; end
			end

			// buffer ownership: fill sets, the batch's last step releases; stage 1 hands the
			// output bank to the drain, the drain's last read frees it
			for (int unsigned k = 0; k < 2; k++) begin
				if (fill_last && fbank == k[0]) ib_full[k] <= 1'b1;
				else if (v1 && blast1 && cbank1 == k[0]) ib_full[k] <= 1'b0;
				if (v1 && blast1 && cob1 == k[0]) ob_full[k] <= 1'b1;
				else if (issue_last && dbank == k[0]) ob_full[k] <= 1'b0;
			end

			// drain
			rd1 <= issue;
			if (issue) begin
				dcnt <= issue_last ? '0 : dcnt + 1;
				dlast <= issue_last ? OB_DEPTH == 1 : dcnt == OA_BITS'(OB_DEPTH - 2);
			end
			if (issue_last) dbank <= !dbank;
			douts <= douts_next;
			dcredit <= !douts_next[DQ-1];
		end
	end
endmodule
