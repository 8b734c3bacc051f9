// Stream fork (FINN's DuplicateStreams): every input beat goes to both outputs; each output has
// its own register, so one consumer may run a beat ahead of the other.
module stream_fork #(
	int unsigned  WIDTH = 8
)(
	input	logic  clk,
	input	logic  rst_n,

	input	logic [WIDTH-1:0]  in_tdata,
	input	logic  in_tvalid,
	output	logic  in_tready,

	output	logic [WIDTH-1:0]  out0_tdata,
	output	logic  out0_tvalid,
	input	logic  out0_tready,

	output	logic [WIDTH-1:0]  out1_tdata,
	output	logic  out1_tvalid,
	input	logic  out1_tready
);
	assign  in_tready = (!out0_tvalid || out0_tready) && (!out1_tvalid || out1_tready);
	always_ff @(posedge clk) begin
		if (!rst_n) begin
			out0_tvalid <= 1'b0;
			out1_tvalid <= 1'b0;
		end
		else if (in_tvalid && in_tready) begin
			out0_tvalid <= 1'b1;
			out1_tvalid <= 1'b1;
		end
		else begin
			if (out0_tready) out0_tvalid <= 1'b0;
			if (out1_tready) out1_tvalid <= 1'b0;
		end
	end
	always_ff @(posedge clk) begin
		if (in_tvalid && in_tready) begin
			out0_tdata <= in_tdata;
			out1_tdata <= in_tdata;
		end
	end
endmodule
