; One training step of a linear layer y = x @ w on the default preset (8x8 array):
; the forward pass, the gradients, and an SGD update of the weights with stochastic
; rounding. The host writes x, wq, w and dy into memory and reads y, dx and dw back
; (docs/ISA.md, "Assembly language"). Assemble with:
;
;   qforge asm gen/programs/example.qasm --preset default

.const BATCH = 32
.const INPUTS = 64
.const OUTPUTS = 10
.const SHIFT = 8                ; learning rate 2**-SHIFT on the gradient accumulators
.const WEIGHT_BITS = 16         ; the weights' fixed-point format

.text
forward:
    precision a, blocks=4, kept=4       ; exact 8-bit operands (4 blocks of 2 bits)
    precision b, blocks=4, kept=4
    output quantize, shift=6, rounding=nearest, relu
    linear_forward x=x, w=wq, y=y, batch=BATCH, inputs=INPUTS, outputs=OUTPUTS

backward:
    ; dy (the loss gradient) comes from the host. Raw accumulators, so a GEMM split
    ; along k would still be exact (here k = BATCH fits one GEMM).
    output
    linear_backward x=x, w=wq, dy=dy, dx=dx, dw=dw, batch=BATCH, inputs=INPUTS, outputs=OUTPUTS

update:
    ; w <- clamp(w + round_stochastic((x^T @ dy) / 2**SHIFT), WEIGHT_BITS bits);
    ; leaves the output stage at quantize=1, wide=1, rounding=stochastic.
    sgd_update w=w, x=x, dy=dy, batch=BATCH, inputs=INPUTS, outputs=OUTPUTS, shift=SHIFT, weight_bits=WEIGHT_BITS, seed=0x5eed, tensor=1
    fence                               ; idle = the step is done
end:

.const STEP_WORDS = end - forward       ; instruction words of one step

.data
shape:  .word BATCH, INPUTS, OUTPUTS    ; for the host: the layer's shape
x:      .zero BATCH * INPUTS            ; inputs, 8-bit operands
wq:     .zero INPUTS * OUTPUTS          ; weights as 8-bit operands (the host derives them from w)
w:      .zero INPUTS * OUTPUTS          ; weights, WEIGHT_BITS-bit fixed point
y:      .zero BATCH * OUTPUTS           ; outputs
dy:     .zero BATCH * OUTPUTS           ; output gradient
dx:     .zero BATCH * INPUTS            ; input gradient (raw accumulators)
dw:     .zero INPUTS * OUTPUTS          ; weight gradient (raw accumulators)
