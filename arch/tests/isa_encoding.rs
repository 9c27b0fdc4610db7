//! Every instruction encodes and decodes to itself; malformed encodings are rejected, never misread.

use arch::isa::{self, Activation, Buffer, Deps, Gemm, Instruction, IsaError, Load, Op, Opcode, Post, Stage, Store};
use proptest::prelude::*;

fn deps_for(stage: Option<Stage>) -> impl Strategy<Value = Deps> {
    any::<[bool; 4]>().prop_map(move |[a, b, c, d]| match stage {
        Some(Stage::Load) => Deps { pop_prev: false, pop_next: b, push_prev: false, push_next: d },
        Some(Stage::Compute) => Deps { pop_prev: a, pop_next: b, push_prev: c, push_next: d },
        Some(Stage::Store) => Deps { pop_prev: a, pop_next: false, push_prev: c, push_next: false },
        None => Deps::NONE,
    })
}

fn load() -> impl Strategy<Value = Op> {
    (
        prop_oneof![Just(Buffer::Act), Just(Buffer::Wgt), Just(Buffer::Acc)],
        any::<(u16, u16, u16, u16, u32, u32)>(),
        [0u8..16, 0u8..16, 0u8..16, 0u8..16],
    )
        .prop_map(|(buffer, (sram_base, y_size, x_size, x_stride, dram_addr, exp), pad)| {
            let exp_addr = if buffer == Buffer::Acc { 0 } else { exp };
            Op::Load(Load { buffer, sram_base, y_size, x_size, x_stride, dram_addr, exp_addr, pad })
        })
}

fn store() -> impl Strategy<Value = Op> {
    (prop_oneof![Just(Buffer::Out), Just(Buffer::Acc)], any::<(u16, u16, u16, u16, u32, u32)>()).prop_map(
        |(buffer, (sram_base, y_size, x_size, x_stride, dram_addr, exp))| {
            let exp_addr = if buffer == Buffer::Acc { 0 } else { exp };
            Op::Store(Store { buffer, sram_base, y_size, x_size, x_stride, dram_addr, exp_addr })
        },
    )
}

fn gemm() -> impl Strategy<Value = Op> {
    (any::<(bool, u16, u16, u16, u16, u16, u16, u16)>(), any::<(u16, u16, u16, u16, u8, u8, u16, u16, u16)>()).prop_map(
        |((reset, a, w, c, mo, mi, n, wns), (amo, ami, cmo, cmi, ko, km, ki, ako, akm))| {
            Op::Gemm(Gemm {
                reset,
                act_base: a,
                wgt_base: w,
                acc_base: c,
                m_outer: mo,
                m_inner: mi,
                n_size: n,
                wgt_n_stride: wns,
                act_m_outer_stride: amo,
                act_m_inner_stride: ami,
                acc_m_outer_stride: cmo,
                acc_m_inner_stride: cmi,
                k_outer: ko,
                k_mid: km,
                k_inner: ki,
                act_k_outer_stride: ako,
                act_k_mid_stride: akm,
            })
        },
    )
}

fn post() -> impl Strategy<Value = Op> {
    (
        prop_oneof![Just(Activation::None), Just(Activation::Relu), Just(Activation::Relu6)],
        any::<[bool; 4]>(),
        any::<[u16; 9]>(),
    )
        .prop_map(|(activation, [bias, residual, to_acc, round_away], f)| {
            Op::Post(Post {
                activation,
                bias,
                residual,
                to_acc,
                round_away,
                acc_base: f[0],
                out_base: f[1],
                m_size: f[2],
                n_blocks: f[3],
                acc_m_stride: f[4],
                out_m_stride: f[5],
                bias_base: f[6],
                res_base: f[7],
                res_m_stride: f[8],
            })
        })
}

fn instruction() -> impl Strategy<Value = Instruction> {
    let op = prop_oneof![
        load(),
        store(),
        gemm(),
        post(),
        prop_oneof![Just(Stage::Load), Just(Stage::Compute), Just(Stage::Store)].prop_map(Op::Sync),
        Just(Op::Finish),
    ];
    op.prop_flat_map(|op| {
        let stage = Instruction::new(op).stage();
        deps_for(stage).prop_map(move |deps| Instruction { op, deps })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn every_instruction_round_trips(inst in instruction()) {
        let bytes = inst.to_bytes().unwrap();
        prop_assert_eq!(Instruction::from_bytes(&bytes).unwrap(), inst);
        prop_assert_eq!(Instruction::decode(&inst.encode().unwrap()).unwrap(), inst);
    }

    #[test]
    fn any_reserved_bit_is_rejected(inst in instruction(), pick in any::<prop::sample::Index>()) {
        let layout = isa::layout(inst.opcode());
        let reserved: Vec<u32> =
            (0..256).filter(|b| !layout.iter().any(|f| (f.lsb..f.lsb + f.width).contains(b))).collect();
        prop_assume!(!reserved.is_empty());
        let bit = reserved[pick.index(reserved.len())];
        let mut w = inst.encode().unwrap();
        w[(bit / 64) as usize] |= 1 << (bit % 64);
        let is_reserved_error = matches!(Instruction::decode(&w), Err(IsaError::ReservedBits { .. }));
        prop_assert!(is_reserved_error);
    }

    #[test]
    fn programs_assemble_and_disassemble(program in prop::collection::vec(instruction(), 0..40)) {
        let bytes = isa::assemble(&program).unwrap();
        prop_assert_eq!(bytes.len(), program.len() * isa::INSTRUCTION_BYTES);
        prop_assert_eq!(isa::disassemble(&bytes).unwrap(), program);
    }
}

#[test]
fn every_opcode_is_covered_and_unknown_opcodes_fail() {
    for op in Opcode::ALL {
        let mut w = [0u64; 4];
        w[0] = op as u64;
        match op {
            Opcode::Sync => w[0] |= 1 << 8,                     // compute stage
            Opcode::Store => w[0] |= (Buffer::Out as u64) << 8, // STORE reads OUT or ACC
            _ => {}
        }
        let inst = Instruction::decode(&w).unwrap();
        assert_eq!(inst.opcode(), op);
    }
    for bad in 6..16u64 {
        assert_eq!(Instruction::decode(&[bad, 0, 0, 0]), Err(IsaError::UnknownOpcode(bad as u8)));
    }
}

#[test]
fn invalid_fields_are_rejected() {
    // LOAD into the output buffer.
    let w = [(Buffer::Out as u64) << 8, 0, 0, 0];
    assert!(matches!(Instruction::decode(&w), Err(IsaError::BadField { field: "buffer", .. })));
    // STORE from the weight buffer.
    let w = [3 | (Buffer::Wgt as u64) << 8, 0, 0, 0];
    assert!(matches!(Instruction::decode(&w), Err(IsaError::BadField { field: "buffer", .. })));
    // POST activation 3.
    let w = [2 | 3 << 8, 0, 0, 0];
    assert!(matches!(Instruction::decode(&w), Err(IsaError::BadField { field: "activation", .. })));
    // SYNC on stage 3.
    let w = [4 | 3 << 8, 0, 0, 0];
    assert!(matches!(Instruction::decode(&w), Err(IsaError::BadField { field: "stage", .. })));
    // LOAD popping from a previous stage that does not exist.
    let w = [1 << 4, 0, 0, 0];
    assert!(Instruction::decode(&w).is_err());
    // STORE pushing to a next stage that does not exist.
    let w = [3 | (Buffer::Out as u64) << 8 | 1 << 7, 0, 0, 0];
    assert!(Instruction::decode(&w).is_err());
    // FINISH with tokens.
    let w = [5 | 1 << 6, 0, 0, 0];
    assert!(Instruction::decode(&w).is_err());
    // A truncated instruction in a ring image.
    assert!(isa::disassemble(&[0u8; 31]).is_err());
}
