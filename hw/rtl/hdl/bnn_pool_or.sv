// Binary max-pool after FINN's depthwise sliding-window generator: the max of K*K bipolar values is
// the OR of their bits. The SWG streams each window as K2 consecutive beats of PE channels (its
// depthwise channel interleave), so one output beat is the OR of K2 input beats.
module bnn_pool_or #(
	int unsigned  PE = 8,
	int unsigned  K2 = 4,
	int unsigned  WIDTH = ((PE+7)/8)*8
)(
	input	logic  clk,
	input	logic  rst_n,

	input	logic [WIDTH-1:0]  in_tdata,
	input	logic  in_tvalid,
	output	logic  in_tready,

	output	logic [WIDTH-1:0]  out_tdata,
	output	logic  out_tvalid,
	input	logic  out_tready
);
	localparam int unsigned  K_BITS = K2 > 1 ? $clog2(K2) : 1;
	logic [K_BITS-1:0]  k;
	logic [PE-1:0]  acc;
	wire  last = (k == K_BITS'(K2-1));
	assign  in_tready = !last || !out_tvalid || out_tready;
	wire  take = in_tvalid && in_tready;

	always_ff @(posedge clk) begin
		if (!rst_n) begin
			k <= '0;
			acc <= '0;
			out_tvalid <= 1'b0;
			out_tdata <= '0;
		end
		else begin
			if (out_tvalid && out_tready) out_tvalid <= 1'b0;
			if (take) begin
				if (last) begin
					out_tdata <= WIDTH'(acc | in_tdata[PE-1:0]);
					out_tvalid <= 1'b1;
					acc <= '0;
					k <= '0;
				end
				else begin
					acc <= ((k == 0) ? '0 : acc) | in_tdata[PE-1:0];
					k <= k + 1;
				end
			end
		end
	end
endmodule
