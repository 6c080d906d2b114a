// SafeTensorsDType: the dtype strings of the safetensors format and their sizes.
//
// Reference: huggingface/safetensors, `safetensors/src/tensor.rs` (`enum Dtype`). The Rust enum's
// declaration order is also the order `serialize` lays tensors out in (largest first, then by
// name), which `SafeTensorsWriter` mirrors so our files are byte-identical to Python's.

public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3: return 1
        case .I16, .U16, .F16, .BF16: return 2
        case .I32, .U32, .F32: return 4
        case .F64, .I64, .U64: return 8
        }
    }

    /// Position in the Rust `Dtype` enum; `serialize` sorts tensors by this, descending.
    var layoutRank: Int {
        switch self {
        case .BOOL: return 0
        case .U8: return 1
        case .I8: return 2
        case .F8_E5M2: return 3
        case .F8_E4M3: return 4
        case .I16: return 5
        case .U16: return 6
        case .F16: return 7
        case .BF16: return 8
        case .I32: return 9
        case .U32: return 10
        case .F32: return 11
        case .F64: return 12
        case .I64: return 13
        case .U64: return 14
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .F8_E5M2, .F8_E4M3, .F16, .BF16, .F32, .F64: return true
        default: return false
        }
    }
}

/// The metadata of one tensor in a safetensors file.
public struct SafeTensorsInfo: Equatable, Sendable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// Byte offsets relative to the start of the data section (after the 8-byte length and header).
    public let byteRange: Range<Int>

    public init(name: String, dtype: SafeTensorsDType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }

    /// Number of elements (1 for a scalar of shape []).
    public var count: Int { shape.reduce(1, *) }
}
