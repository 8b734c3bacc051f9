// Channel concat of two streams (FINN's StreamingConcat): per pixel, N0 beats of the first input,
// then N1 beats of the second, passed through without storage.
module stream_concat #(
	int unsigned  WIDTH = 8,
	int unsigned  N0 = 1,
	int unsigned  N1 = 1
)(
	input	logic  clk,
	input	logic  rst_n,

	input	logic [WIDTH-1:0]  in0_tdata,
	input	logic  in0_tvalid,
	output	logic  in0_tready,

	input	logic [WIDTH-1:0]  in1_tdata,
	input	logic  in1_tvalid,
	output	logic  in1_tready,

	output	logic [WIDTH-1:0]  out_tdata,
	output	logic  out_tvalid,
	input	logic  out_tready
);
	localparam int unsigned  C_BITS = $clog2(N0 + N1 + 1);
	logic [C_BITS-1:0]  cnt;
	wire  sel = (cnt >= C_BITS'(N0));
	assign  out_tdata = sel ? in1_tdata : in0_tdata;
	assign  out_tvalid = sel ? in1_tvalid : in0_tvalid;
	assign  in0_tready = !sel && out_tready;
	assign  in1_tready = sel && out_tready;
	always_ff @(posedge clk) begin
		if (!rst_n) cnt <= '0;
		else if (out_tvalid && out_tready) cnt <= (cnt == C_BITS'(N0 + N1 - 1)) ? '0 : cnt + 1;
	end
endmodule
