// Sliding-window generator with FINN's ConvolutionInputGenerator semantics (SIMD channels per beat),
// built so that every register-to-register path is a few logic levels: no counter compare, address
// computation or buffer read sits between the stream handshakes and a wide enable.
//
// Input: frames of H x W pixels, C = CF x SIMD channels, one beat = SIMD channels of one pixel,
// channel fold fastest. Output per window (oy, ox), stride SH x SW, kernel KH x KW:
//   DEPTHWISE = 0: (ky, kx, cf) beats, cf fastest            (FINN's non-depthwise order)
//   DEPTHWISE = 1: (cf, ky, kx) beats, kx fastest            (FINN's depthwise order, for pooling)
//
// The input is written into a circular buffer of DEPTH beats at the stream position modulo DEPTH;
// the reader walks the windows in order. Both sides are governed by one signed distance,
// lag = beats written - the current window's first beat, kept as two offset registers whose sign
// bits are the only conditions:
//   avail (the window's last beat is in the buffer)  <=> lag >= SPAN + 1
//   room  (a write cannot overwrite the window)       <=> lag <  DEPTH - 1 (see below)
// Each is registered from the next lag, so in_tready and the read issue come straight from
// registers. The read address moves by a constant per loop level (chosen by registered last-flags),
// taken modulo DEPTH with two adders in parallel. DEPTH (default) is the smallest that lets the
// writer finish the next window while the current one is read, so windows follow back to back.
//
// Reads: address register -> buffer (LUT RAM, or block RAM with BLOCK = 1) -> data register ->
// output register -> an output queue with a credit count, so back-pressure never stalls the read
// pipeline and throughput is one beat per cycle.
module bnn_swg #(
	int unsigned  SIMD = 1,
	int unsigned  BITS = 1,           // bits per channel
	int unsigned  C = 1,              // channels (a multiple of SIMD)
	int unsigned  H = 4,
	int unsigned  W = 4,
	int unsigned  KH = 3,
	int unsigned  KW = 3,
	int unsigned  SH = 1,
	int unsigned  SW = 1,
	int unsigned  OH = (H - KH) / SH + 1,
	int unsigned  OW = (W - KW) / SW + 1,
	bit  DEPTHWISE = 0,
	int unsigned  DEPTH = 0,          // buffer beats (0: the smallest without stalls between windows)
	bit  BLOCK = 0,                   // buffer in block RAM (else LUT RAM)
	int unsigned  IN_WIDTH = ((SIMD*BITS+7)/8)*8,
	int unsigned  OUT_WIDTH = ((SIMD*BITS+7)/8)*8
)(
	input	logic  clk,
	input	logic  rst_n,

	input	logic [IN_WIDTH-1:0]  in_tdata,
	input	logic  in_tvalid,
	output	logic  in_tready,

	output	logic [OUT_WIDTH-1:0]  out_tdata,
	output	logic  out_tvalid,
	input	logic  out_tready
);
	localparam longint  CF = C / SIMD;
	localparam longint  ROW = W * CF;                                  // beats per input row
	localparam longint  SPAN = (KH - 1) * ROW + (KW - 1) * CF + CF - 1; // a window's last beat from its first
	// the window's first beat moves by: next column, next row, next frame
	localparam longint  DB_X = SW * CF;
	localparam longint  DB_Y = SH * ROW - (OW - 1) * SW * CF;
	localparam longint  DB_F = H * ROW - ((OH - 1) * SH * ROW + (OW - 1) * SW * CF);
	localparam longint  AX = OW > 1 ? DB_X : 0, AY = OH > 1 ? DB_Y : 0;
	localparam longint  AHEAD = AX > AY ? AX : AY;      // how far the writer must lead for the next window
	localparam longint  D = DEPTH > 0 ? DEPTH : SPAN + 2 + AHEAD;
	localparam int unsigned  A = D > 1 ? $clog2(D) : 1;
	localparam int unsigned  LB = $clog2(H * ROW + D + 1) + 2;          // lag registers (signed)

	// loop levels inside a window, innermost first: counts and the read address steps
	localparam longint  N0 = DEPTHWISE ? KW : CF;
	localparam longint  N1 = DEPTHWISE ? KH : KW;
	localparam longint  N2 = DEPTHWISE ? CF : KH;
	localparam longint  S0 = DEPTHWISE ? CF : 1;
	localparam longint  S1 = DEPTHWISE ? ROW - (KW - 1) * CF : CF - (CF - 1);
	localparam longint  S2 = DEPTHWISE ? 1 - (KH - 1) * ROW - (KW - 1) * CF : ROW - (KW - 1) * CF - (CF - 1);

	function automatic longint modd(input longint x);
		return ((x % D) + D) % D;
	endfunction
	localparam logic [A-1:0]  R0 = A'(modd(S0)), R1 = A'(modd(S1)), R2 = A'(modd(S2)),
	                          RX = A'(modd(DB_X - SPAN)), RY = A'(modd(DB_Y - SPAN)), RF = A'(modd(DB_F - SPAN));

	initial begin
		if (C % SIMD != 0) $error("bnn_swg: SIMD must divide C");
		if (D < SPAN + 2) $error("bnn_swg: DEPTH must hold a whole window and the write in flight (SPAN + 2 beats)");
		if ((OH - 1) * SH + KH > H || (OW - 1) * SW + KW > W) $error("bnn_swg: the windows leave the frame");
	end

	function automatic int unsigned cbits(input longint n);
		return n > 1 ? $clog2(n) : 1;
	endfunction

	// ---- read issue: window loop counters with registered last-flags ---------------------------
	logic [cbits(N0)-1:0]  c0;
	logic [cbits(N1)-1:0]  c1;
	logic [cbits(N2)-1:0]  c2;
	logic [cbits(OW)-1:0]  cx;
	logic [cbits(OH)-1:0]  cy;
	logic  l0, l1, l2, lx, ly;           // the counter is at its last value
	logic  p0, p1, p2, px, py;           // the counter is at its last value but one
	logic  avail_r, room_r, credit_r;
	logic [A-1:0]  ra, wa;
	wire  issue = avail_r && credit_r;
	wire  wend = l0 && l1 && l2;          // the window's last beat
	wire  adv = issue && wend;
	wire  wrote = in_tvalid && room_r;
	assign  in_tready = room_r;

	// The address step of the next issue (modulo D) and that step minus D are registered with the
	// flags they follow from, so the address update is one adder pair and a sign-selected mux.
	function automatic logic [A-1:0] step_of(input logic f0, f1, f2, fx, fy);
		unique casez ({f0, f1, f2, fx, fy})
			5'b0????: return R0;
			5'b10???: return R1;
			5'b110??: return R2;
			5'b1110?: return RX;
			5'b11110: return RY;
			default:  return RF;
		endcase
	endfunction
	function automatic logic signed [A+1:0] stepm_of(input logic f0, f1, f2, fx, fy);
		return (A+2)'(longint'(step_of(f0, f1, f2, fx, fy)) - D);
	endfunction
	logic [A-1:0]  step_r;
	logic signed [A+1:0]  step_m;                  // step_r - D
	wire [A:0]  ra_sum = {1'b0, ra} + {1'b0, step_r};
	wire signed [A+1:0]  ra_wrap = $signed({2'b0, ra}) + step_m;

	// the flags after this issue, from registered flags only (a counter about to wrap is last
	// after it only when its count is 1; else it is last when it was last but one)
	logic  n0, n1, n2, nx, ny;
	always_comb begin
		n0 = l0 ? N0 == 1 : p0;
		n1 = l0 ? (l1 ? N1 == 1 : p1) : l1;
		n2 = l0 && l1 ? (l2 ? N2 == 1 : p2) : l2;
		nx = wend ? (lx ? OW == 1 : px) : lx;
		ny = wend && lx ? (ly ? OH == 1 : py) : ly;
	end
	localparam logic  F0 = N0 == 1, F1 = N1 == 1, F2 = N2 == 1, FX = OW == 1, FY = OH == 1;
	localparam logic  G0 = N0 == 2, G1 = N1 == 2, G2 = N2 == 2, GX = OW == 2, GY = OH == 2;
	// the last-but-one flag after a counter steps: at 0 after a wrap, else from the count it leaves
	function automatic logic prelast_next(input longint n, input longint cnt, input logic wrap);
		return wrap ? (n == 2) : (cnt == n - 3);
	endfunction

	always_ff @(posedge clk) begin
		if (!rst_n) begin
			{c0, c1, c2, cx, cy} <= '0;
			{l0, l1, l2, lx, ly} <= {F0, F1, F2, FX, FY};
			{p0, p1, p2, px, py} <= {G0, G1, G2, GX, GY};
			step_r <= step_of(F0, F1, F2, FX, FY);
			step_m <= stepm_of(F0, F1, F2, FX, FY);
			ra <= '0;
		end
		else if (issue) begin
			ra <= ra_wrap < 0 ? ra_sum[A-1:0] : A'(ra_wrap);
			{l0, l1, l2, lx, ly} <= {n0, n1, n2, nx, ny};
			step_r <= step_of(n0, n1, n2, nx, ny);
			step_m <= stepm_of(n0, n1, n2, nx, ny);
			c0 <= l0 ? '0 : c0 + 1;
			p0 <= prelast_next(N0, c0, l0);
			if (l0) begin
				c1 <= l1 ? '0 : c1 + 1;
				p1 <= prelast_next(N1, c1, l1);
			end
			if (l0 && l1) begin
				c2 <= l2 ? '0 : c2 + 1;
				p2 <= prelast_next(N2, c2, l2);
			end
			if (wend) begin
				cx <= lx ? '0 : cx + 1;
				px <= prelast_next(OW, cx, lx);
			end
			if (wend && lx) begin
				cy <= ly ? '0 : cy + 1;
				py <= prelast_next(OH, cy, ly);
			end
		end
	end

	// ---- the lag, as two offset registers whose signs are avail and room ------------------------
	// A write is counted a cycle late (from a register), so the sums below start from registers
	// only: the window start's move (one of three constants, by the registered flags) plus the
	// late write, both candidates in parallel, the issue's window end choosing between them last.
	// Counting late delays avail by a cycle (safe) and would make room optimistic by the one
	// write not yet counted: room therefore keeps one beat in hand (lag_b = lag - (D - 1)).
	logic  wrote_r;
	logic signed [LB-1:0]  lag_a, lag_b;          // lag_a = lag - (SPAN + 1), lag_b = lag - (D - 1)
	// the window start's move at the next window end (by the flags after this issue), registered
	// with the flags as -move and 1 - move (a write counted in the same cycle)
	function automatic logic signed [LB-1:0] move_of(input logic fx, fy, input longint plus);
		return LB'(plus - (!fx ? DB_X : !fy ? DB_Y : DB_F));
	endfunction
	logic signed [LB-1:0]  mv0, mv1;
	always_ff @(posedge clk) begin
		if (!rst_n) begin
			mv0 <= move_of(FX, FY, 0);
			mv1 <= move_of(FX, FY, 1);
		end
		else if (issue) begin
			mv0 <= move_of(nx, ny, 0);
			mv1 <= move_of(nx, ny, 1);
		end
	end
	wire signed [LB-1:0]  mv = wrote_r ? mv1 : mv0;
	wire signed [LB-1:0]  a_stay = lag_a + LB'(wrote_r), a_move = lag_a + mv;
	wire signed [LB-1:0]  b_stay = lag_b + LB'(wrote_r), b_move = lag_b + mv;
	always_ff @(posedge clk) begin
		if (!rst_n) begin
			wrote_r <= 1'b0;
			lag_a <= -LB'(SPAN + 1);
			lag_b <= -LB'(D - 1);
			avail_r <= 1'b0;
			room_r <= 1'b0;
		end
		else begin
			wrote_r <= wrote;
			lag_a <= adv ? a_move : a_stay;
			lag_b <= adv ? b_move : b_stay;
			avail_r <= adv ? !a_move[LB-1] : !a_stay[LB-1];
			room_r <= adv ? b_move[LB-1] : b_stay[LB-1];
		end
	end

	// ---- buffer ---------------------------------------------------------------------------------
	// Reads: address -> buffer -> register -> register (q_out, into the queue), LAT cycles from
	// issue. A deep LUT RAM buffer is read as banks of 64 rows (one LUT RAM deep) whose outputs are
	// registered, the bank then chosen by the registered bank index, in groups of 16 banks (one LUT
	// and its MUXF7/MUXF8) with a register between the two choices when there are more than 16
	// banks: never a LUT RAM read and a wide multiplexer in one cycle.
	localparam int unsigned  DB = SIMD * BITS;
	localparam int unsigned  BANK = 64;
	localparam bit  BANKED = !BLOCK && D > 2 * BANK;
	localparam int unsigned  NB = (D + BANK - 1) / BANK;
	localparam int unsigned  GROUP = 16;
	localparam bit  TWO_LEVEL = BANKED && NB > GROUP;
	localparam int unsigned  LAT = TWO_LEVEL ? 3 : 2;
	logic [DB-1:0]  q_out;
	logic [LAT-1:0]  vs;                     // a read issued 1..LAT cycles ago
	always_ff @(posedge clk) begin
		if (!rst_n) wa <= '0;
		else if (wrote) wa <= (wa == A'(D - 1)) ? '0 : wa + 1;
	end
	// a read and a write in the same cycle never meet: reads lie in (written - D, written)
	if (BLOCK) begin : g_bram
		(* ram_style = "block" *) logic [DB-1:0]  buf_mem [D];
		logic [DB-1:0]  q1;
		always_ff @(posedge clk) if (wrote) buf_mem[wa] <= in_tdata[DB-1:0];
		always_ff @(posedge clk) q1 <= buf_mem[ra];
		always_ff @(posedge clk) q_out <= q1;    // the block RAM's output register
	end
	else if (!BANKED) begin : g_lutram
		(* ram_style = "distributed" *) logic [DB-1:0]  buf_mem [D];
		logic [DB-1:0]  q1;
		always_ff @(posedge clk) if (wrote) buf_mem[wa] <= in_tdata[DB-1:0];
		always_ff @(posedge clk) q1 <= buf_mem[ra];
		always_ff @(posedge clk) q_out <= q1;
	end
	else begin : g_banked
		localparam int unsigned  BA = NB > 1 ? $clog2(NB) : 1;
		logic [NB-1:0]  wsel;                 // the bank being written, one-hot
		always_ff @(posedge clk) begin
			if (!rst_n) wsel <= NB'(1);
			else if (wrote) wsel <= (wa == A'(D - 1)) ? NB'(1) : (&wa[5:0]) ? wsel << 1 : wsel;
		end
		localparam int unsigned  NP = TWO_LEVEL ? (NB + GROUP - 1) / GROUP * GROUP : NB;
		logic [DB-1:0]  bank_q [NP];
		for (genvar b = NB; b < NP; b++) begin : g_pad
			assign bank_q[b] = '0;            // never chosen: pads the last group to 16 inputs
		end
		for (genvar b = 0; b < NB; b++) begin : g_bank
			(* ram_style = "distributed" *) logic [DB-1:0]  mem [BANK];
			always_ff @(posedge clk) if (wrote && wsel[b]) mem[wa[5:0]] <= in_tdata[DB-1:0];
			always_ff @(posedge clk) bank_q[b] <= mem[ra[5:0]];
		end
		logic [BA-1:0]  sel1;
		always_ff @(posedge clk) sel1 <= BA'(ra[A-1:6]);
		if (!TWO_LEVEL) begin : g_one
			always_ff @(posedge clk) q_out <= bank_q[sel1];
		end
		else begin : g_two
			localparam int unsigned  NG = (NB + GROUP - 1) / GROUP;
			logic [DB-1:0]  group_q [NG];
			logic [BA-1:0]  sel2;
			for (genvar g = 0; g < NG; g++) begin : g_group
				always_ff @(posedge clk) group_q[g] <= bank_q[g * GROUP + sel1[3:0]];
			end
			always_ff @(posedge clk) sel2 <= sel1;
			always_ff @(posedge clk) q_out <= group_q[sel2 / GROUP];
		end
	end
	always_ff @(posedge clk) vs <= rst_n ? LAT'({vs, issue}) : '0;

	// ---- output queue with credit ----------------------------------------------------------------
	// issue -> buffer read -> q_out -> queue: a beat is counted from its issue until it leaves the
	// queue, which holds the LAT beats in flight and three more. The count is a thermometer code (bit i: more than i beats out), so each of its bits and the
	// credit are one LUT of the code's neighbours, the issue and the consumer's handshake.
	localparam int unsigned  OQ = LAT + 3;
	localparam int unsigned  OB = $clog2(OQ + 1);
	logic [OQ-1:0]  outs;
	wire  pop = out_tvalid && out_tready;
	wire [OQ-1:0]  outs_next = issue && !pop ? {outs[OQ-2:0], 1'b1} : !issue && pop ? {1'b0, outs[OQ-1:1]} : outs;
	always_ff @(posedge clk) begin
		if (!rst_n) begin
			outs <= '0;
			credit_r <= 1'b0;
		end
		else begin
			outs <= outs_next;
			credit_r <= !outs_next[OQ-1];
		end
	end
	logic [OUT_WIDTH-1:0]  qin_w;
	assign  qin_w = OUT_WIDTH'(q_out);
	logic  q_ready;
	logic [OB-1:0]  q_max, q_cur;
	stream_fifo #(.WIDTH(OUT_WIDTH), .DEPTH(OQ), .BITS(DB)) queue (
		.clk, .rst_n, .limit(OB'(OQ)),
		.in_tdata(qin_w), .in_tvalid(vs[LAT-1]), .in_tready(q_ready),
		.out_tdata, .out_tvalid, .out_tready,
		.max_count(q_max), .cur_count(q_cur));
endmodule
