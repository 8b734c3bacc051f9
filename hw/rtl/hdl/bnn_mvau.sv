// Binary matrix-vector unit with FINN's MVAU folding semantics (PE output lanes, SIMD input lanes).
//
// Per input vector: NF = MH/PE neuron folds x SF = MW/SIMD synapse folds, one step per cycle.
// The first neuron fold reads the SF input beats from in_* and keeps them; the other folds
// replay them. Every step consumes one weight word (PE x SIMD bits) from w_*: FINN's decoupled /
// external weight stream, so FINN's memstream (BRAM or LUTRAM) or a DDR stream feeds it unchanged.
//
//   IN_BITS == 1: XNOR + popcount (binary activations, 1-bit weights, bit 1 = +1): out = #matches
//   IN_BITS  > 1: unsigned IN_BITS-bit inputs times signed W_BITS-bit weights (FINN narrows the
//                 first layer's bipolar weights to INT2): out = sum(w * x)
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

	initial begin
		if (MW % SIMD != 0 || MH % PE != 0) $error("bnn_mvau: SIMD must divide MW and PE must divide MH");
		if (IN_BITS == 1 && W_BITS != 1) $error("bnn_mvau: XNOR mode needs 1-bit weights");
	end

	// input replay buffer: SF beats of SIMD inputs
	logic [SIMD*IN_BITS-1:0]  ibuf [SF];
	logic [SF_BITS-1:0]  sf;
	logic [NF_BITS-1:0]  nf;
	logic signed [ACC_BITS-1:0]  acc [PE];

	logic [SIMD*IN_BITS-1:0]  x;
	assign  x = (nf == 0) ? in_tdata[SIMD*IN_BITS-1:0] : ibuf[sf];
	wire  last_sf = (sf == SF_BITS'(SF-1));
	wire  out_free = !out_tvalid || out_tready;
	wire  step = w_tvalid && ((nf != 0) || in_tvalid) && (!last_sf || out_free);
	assign  in_tready = (nf == 0) && w_tvalid && (!last_sf || out_free);
	assign  w_tready = ((nf != 0) || in_tvalid) && (!last_sf || out_free);

	// one step's contribution per PE
	function automatic logic signed [ACC_BITS-1:0] contrib(input logic [SIMD*IN_BITS-1:0] xv, input logic [SIMD*W_BITS-1:0] wv);
		logic signed [ACC_BITS-1:0]  s;
		s = '0;
		for (int unsigned i = 0; i < SIMD; i++) begin
			if (IN_BITS == 1) begin
				logic  match;  // 1-bit first: inside a wider context ~^ would also invert the zero-extension
				match = xv[i] ~^ wv[i];
				s += ACC_BITS'(match);
			end
			else begin
				logic signed [ACC_BITS-1:0]  v, w;
				v = ACC_BITS'($unsigned(xv[i*IN_BITS +: IN_BITS]));
				w = ACC_BITS'($signed(wv[i*W_BITS +: W_BITS]));
				if (W_BITS <= 2) begin  // {-2,-1,0,1}: add/subtract, no multiplier (FINN's INT2 bipolar)
					unique case (w[1:0])
						2'b01:   s += v;
						2'b11:   s -= v;
						2'b10:   s -= v <<< 1;
						default: ;
					endcase
				end
				else s += v * w;
			end
		end
		return s;
	endfunction

	logic signed [ACC_BITS-1:0]  sum [PE];
	always_comb begin
		for (int unsigned p = 0; p < PE; p++) sum[p] = ((sf == 0) ? '0 : acc[p]) + contrib(x, w_tdata[p*SIMD*W_BITS +: SIMD*W_BITS]);
	end

	always_ff @(posedge clk) begin
		if (!rst_n) begin
			sf <= '0;
			nf <= '0;
			out_tvalid <= 1'b0;
			for (int unsigned p = 0; p < PE; p++) acc[p] <= '0;
		end
		else begin
			if (out_tvalid && out_tready) out_tvalid <= 1'b0;
			if (step) begin
				if (nf == 0) ibuf[sf] <= in_tdata[SIMD*IN_BITS-1:0];
				for (int unsigned p = 0; p < PE; p++) acc[p] <= sum[p];
				if (last_sf) begin
					out_tvalid <= 1'b1;
					sf <= '0;
					nf <= (nf == NF_BITS'(NF-1)) ? '0 : nf + 1;
				end
				else sf <= sf + 1;
			end
		end
	end

	always_ff @(posedge clk) begin
		if (step && last_sf) begin
			out_tdata <= '0;
			for (int unsigned p = 0; p < PE; p++) out_tdata[p*OUT_BITS +: OUT_BITS] <= OUT_BITS'(sum[p]);
		end
	end
endmodule
