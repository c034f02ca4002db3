// Behavioural PCM crossbar with its ADC bank: the Verilog twin of hw/pcm_array.py's `PcmArray`
// (a SIMULATION MODEL of the analog macro, not synthesisable intent), used in the generated
// Verilog that Verilator and Icarus simulate.
//
// Why a hand-written twin: Amaranth emits every statement as multiplexers that a simulator
// evaluates every cycle, so the Amaranth model's rows x cols multiply-accumulate cost the
// co-simulation its time whether or not a row was loaded. Here the accumulation is a loop that
// runs only in a load cycle and skips lanes whose input code is zero.
//
// Interfaces and arithmetic are those of `PcmArray` (docs/architecture.md, contract steps 3-5):
//   load    cycle t: load_valid/load_first/load_row/load_bank; t+1: load_x lane k = DAC code of
//           row (load_row + k) mod ROWS, summed into the column sums of bank load_bank.
//   convert cycle t: conv_*; t+1: codes lane i = ADC code of column conv_slot*N_ADCS + i.
//   host    one pair per access (gp in the low GBITS bits); read data one cycle later.
// Every parameter is set by hw/pcm_array_verilog.py from the AonCimConfig.
module aoncim_pcm_array_model #(
    // No defaults: every value comes from the AonCimConfig through hw/pcm_array_verilog.py
    // (`model_parameters`); an instance that leaves one at 0 stops at time 0 (check below).
    parameter ROWS = 0, parameter COLS = 0, parameter LANES = 0,
    parameter ROW_BITS = 0, parameter COL_BITS = 0, parameter SLOT_BITS = 0, parameter CTR_SHIFT = 0,
    parameter DAC_BITS = 0, parameter GBITS = 0, parameter ADC_BITS = 0, parameter N_ADCS = 0,
    parameter SUM_BITS = 0, parameter V_BITS = 0,
    parameter GAIN_MULT = 0, parameter GAIN_SHIFT = 0, parameter NOISE_MULT = 0,
    parameter NOISE_MEAN = 0
) (
    input  wire                       clk,
    input  wire                       rst,
    input  wire                       load_valid,
    input  wire                       load_first,
    input  wire [ROW_BITS-1:0]        load_row,
    input  wire                       load_bank,
    input  wire [LANES*DAC_BITS-1:0]  load_x,
    input  wire                       conv_stb,
    input  wire [SLOT_BITS-1:0]       conv_slot,
    input  wire                       conv_bank,
    input  wire [3:0]                 conv_bits,
    input  wire [31:0]                conv_mvm,
    input  wire [31:0]                noise_seed,
    output reg  [N_ADCS*ADC_BITS-1:0] codes,
    input  wire [ROW_BITS-1:0]        host_row,
    input  wire [COL_BITS-1:0]        host_col,
    input  wire                       host_w_stb,
    input  wire [2*GBITS-1:0]         host_w_data,
    output reg  [2*GBITS-1:0]         host_r_data
);
    // The temporaries of the clocked loops below (s, x, v, ...) are blocking variables on purpose:
    // a column's sum over the loaded rows is formed within one clock edge.
    /* verilator lint_off BLKSEQ */
    localparam integer PAIRS = ROWS * COLS;

    initial begin
        if (ROWS == 0 || COLS == 0 || LANES == 0 || N_ADCS == 0 || SUM_BITS == 0 || V_BITS == 0)
            $fatal(1, "aoncim_pcm_array_model: parameters not set; instantiate it through hw/pcm_array_verilog.py");
    end
    localparam integer ADC_MAX = (1 << (ADC_BITS - 1)) - 1;

    // G+ and G- codes of pair (row, col) at row * COLS + col.
    reg [GBITS-1:0] gp [0:PAIRS-1];
    reg [GBITS-1:0] gm [0:PAIRS-1];
    // Exact column sums, one set per DAC-register bank.
    reg signed [SUM_BITS-1:0] acc0 [0:COLS-1];
    reg signed [SUM_BITS-1:0] acc1 [0:COLS-1];

    function automatic [31:0] lowbias32(input [31:0] x0);
        reg [31:0] x;
        begin
            x = x0 ^ (x0 >> 16);
            x = x * 32'h7feb352d;
            x = x ^ (x >> 15);
            x = x * 32'h846ca68b;
            lowbias32 = x ^ (x >> 16);
        end
    endfunction

    // Host access.
    wire [31:0] host_pair = {{(32 - ROW_BITS - COL_BITS){1'b0}}, host_row, host_col};
    always @(posedge clk) begin
        if (host_w_stb) begin
            gp[host_pair] <= host_w_data[GBITS-1:0];
            gm[host_pair] <= host_w_data[2*GBITS-1:GBITS];
        end
        host_r_data <= {gm[host_pair], gp[host_pair]};
    end

    // Load: the row reads are issued with the activation reads; both arrive at t+1.
    reg                load_valid_q, load_first_q, load_bank_q;
    reg [ROW_BITS-1:0] load_row_q;
    always @(posedge clk) begin
        if (rst) begin
            load_valid_q <= 1'b0;
        end else begin
            load_valid_q <= load_valid;
        end
        load_first_q <= load_first;
        load_bank_q  <= load_bank;
        load_row_q   <= load_row;
    end

    integer j, k, i;
    reg [ROW_BITS-1:0]        row;
    reg [31:0]                base;
    reg signed [SUM_BITS-1:0] s, old;
    reg signed [SUM_BITS-1:0] x;
    always @(posedge clk) begin
        if (load_valid_q) begin
            for (j = 0; j < COLS; j = j + 1) begin
                s = {SUM_BITS{1'b0}};
                for (k = 0; k < LANES; k = k + 1) begin
                    x = {{(SUM_BITS - DAC_BITS){1'b0}}, load_x[k*DAC_BITS +: DAC_BITS]};
                    if (x != 0) begin
                        row = load_row_q + k[ROW_BITS-1:0];
                        base = {{(32 - ROW_BITS - COL_BITS){1'b0}}, row, {COL_BITS{1'b0}}} + j;
                        s = s + x * ($signed({{(SUM_BITS - GBITS){1'b0}}, gp[base]}) -
                                     $signed({{(SUM_BITS - GBITS){1'b0}}, gm[base]}));
                    end
                end
                old = load_bank_q ? acc1[j] : acc0[j];
                if (load_bank_q) acc1[j] <= load_first_q ? s : old + s;
                else             acc0[j] <= load_first_q ? s : old + s;
            end
        end
    end

    // Convert: ADC lane i sees columns i, i + N_ADCS, ... through its column mux (contract 4-5).
    reg [31:0]              col, h;
    reg [9:0]               hsum;
    reg signed [V_BITS-1:0] v, q, cs, gain, noise;
    always @(posedge clk) begin
        if (rst) begin
            codes <= {(N_ADCS*ADC_BITS){1'b0}};
        end else if (conv_stb) begin
            for (i = 0; i < N_ADCS; i = i + 1) begin
                col = {{(32 - SLOT_BITS){1'b0}}, conv_slot} * N_ADCS + i;
                cs = conv_bank ? acc1[col[COL_BITS-1:0]] : acc0[col[COL_BITS-1:0]];
                h = lowbias32(((conv_mvm << CTR_SHIFT) | col) ^ noise_seed);
                hsum = {2'b00, h[7:0]} + {2'b00, h[15:8]} + {2'b00, h[23:16]} + {2'b00, h[31:24]};
                noise = $signed({{(V_BITS - 10){1'b0}}, hsum}) - NOISE_MEAN;
                gain = $signed({{(V_BITS - 32){1'b0}}, GAIN_MULT[31:0]}) <<< (DAC_BITS - conv_bits);
                v = cs * gain + noise * NOISE_MULT + ($signed({{(V_BITS - 1){1'b0}}, 1'b1}) <<< (GAIN_SHIFT - 1));
                q = v >>> GAIN_SHIFT;
                if (q > ADC_MAX) q = ADC_MAX;
                else if (q < -ADC_MAX) q = -ADC_MAX;
                codes[i*ADC_BITS +: ADC_BITS] <= q[ADC_BITS-1:0];
            end
        end
    end
    /* verilator lint_on BLKSEQ */
endmodule
