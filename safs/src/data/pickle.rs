//! A strict reader of the Python pickles that hold CIFAR-10 (python version) and
//! ImageNet-16 batches: dicts of numpy arrays, lists of ints and strings.
//!
//! It runs the pickle machine for protocols 0-5 over exactly the opcodes such files use
//! (protocol 0 only for its binary-compatible subset: `INT`, `LONG`, `FLOAT`, `PUT`, `GET`,
//! `GLOBAL`, `DICT`, `LIST`, `TUPLE`) and applies only these callables:
//!
//! * `numpy.core.multiarray._reconstruct` / `numpy._core.multiarray._reconstruct` with
//!   `numpy.ndarray`, followed by `BUILD` with the array state
//!   `(version, shape, dtype, is_fortran, raw bytes)`: gives a [`NdArray`];
//! * `numpy.dtype(code, align, copy)` and its `BUILD` state (byte order);
//! * `numpy.core.numeric._frombuffer` / `numpy._core.numeric._frombuffer` (protocol 5);
//! * `_codecs.encode(text, 'latin1')` and `__builtin__.bytes()` / `builtins.bytes()`,
//!   which Python 3 writes for `bytes` objects under protocols 0-2.
//!
//! Python 2 `str` objects (`SHORT_BINSTRING`, `BINSTRING`) become [`Value::Bytes`], as
//! Python 3 loads them with `encoding='bytes'`; dict lookups by name ([`Value::get`])
//! accept either `str` or `bytes` keys. Anything else (an unknown opcode or callable, a
//! truncated file, a big-endian or Fortran-ordered array, bytes after `STOP`) is an error
//! that names the file and the byte offset of the opcode.

use std::collections::HashMap;
use std::path::Path;

use crate::{Error, Result};

/// Element type of a numpy array in a pickle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NpDtype {
    /// `bool` (`b1`), one byte per element.
    Bool,
    /// `uint8` (`u1`).
    U8,
    /// `int8` (`i1`).
    I8,
    /// `uint16` (`u2`).
    U16,
    /// `int16` (`i2`).
    I16,
    /// `uint32` (`u4`).
    U32,
    /// `int32` (`i4`).
    I32,
    /// `uint64` (`u8`).
    U64,
    /// `int64` (`i8`).
    I64,
    /// `float32` (`f4`).
    F32,
    /// `float64` (`f8`).
    F64,
}

impl NpDtype {
    /// The dtype of a numpy type code such as `u1`, `<f8` or `|b1`, if supported.
    pub fn from_code(code: &str) -> Option<Self> {
        let c = code.trim_start_matches(['<', '|', '=']);
        Some(match c {
            "b1" | "?" => NpDtype::Bool,
            "u1" | "B" => NpDtype::U8,
            "i1" | "b" => NpDtype::I8,
            "u2" | "H" => NpDtype::U16,
            "i2" | "h" => NpDtype::I16,
            "u4" | "I" => NpDtype::U32,
            "i4" | "i" => NpDtype::I32,
            "u8" | "Q" => NpDtype::U64,
            "i8" | "q" | "l" => NpDtype::I64,
            "f4" | "f" => NpDtype::F32,
            "f8" | "d" => NpDtype::F64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn itemsize(self) -> usize {
        match self {
            NpDtype::Bool | NpDtype::U8 | NpDtype::I8 => 1,
            NpDtype::U16 | NpDtype::I16 => 2,
            NpDtype::U32 | NpDtype::I32 | NpDtype::F32 => 4,
            NpDtype::U64 | NpDtype::I64 | NpDtype::F64 => 8,
        }
    }

    /// Whether the elements are integers (or booleans).
    pub fn is_integer(self) -> bool {
        !matches!(self, NpDtype::F32 | NpDtype::F64)
    }
}

/// A numpy array: element type, shape, and the raw little-endian bytes in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// Element type.
    pub dtype: NpDtype,
    /// Shape; the product of its entries times the item size is `data.len()`.
    pub shape: Vec<usize>,
    /// Raw little-endian element bytes, C (row-major) order.
    pub data: Vec<u8>,
}

impl NdArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements of an integer (or bool) array as `i64`; `None` for floats or `u64`
    /// values above `i64::MAX`.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        if !self.dtype.is_integer() {
            return None;
        }
        let n = self.dtype.itemsize();
        self.data
            .chunks_exact(n)
            .map(|b| match self.dtype {
                NpDtype::Bool | NpDtype::U8 => Some(b[0] as i64),
                NpDtype::I8 => Some(b[0] as i8 as i64),
                NpDtype::U16 => Some(u16::from_le_bytes([b[0], b[1]]) as i64),
                NpDtype::I16 => Some(i16::from_le_bytes([b[0], b[1]]) as i64),
                NpDtype::U32 => Some(u32::from_le_bytes(b.try_into().unwrap()) as i64),
                NpDtype::I32 => Some(i32::from_le_bytes(b.try_into().unwrap()) as i64),
                NpDtype::U64 => i64::try_from(u64::from_le_bytes(b.try_into().unwrap())).ok(),
                NpDtype::I64 => Some(i64::from_le_bytes(b.try_into().unwrap())),
                NpDtype::F32 | NpDtype::F64 => None,
            })
            .collect()
    }
}

/// A Python object decoded from a pickle.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in `i64`.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `bytes` object, or a Python 2 `str`.
    Bytes(Vec<u8>),
    /// A `str` (Python 2 `unicode`).
    Str(String),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `dict`, items in pickle order.
    Dict(Vec<(Value, Value)>),
    /// A numpy array.
    Array(NdArray),
    /// A numpy dtype object.
    Dtype(NpDtype),
    /// A reference to a class or function (`module.name`) that was not called.
    Global(String, String),
}

impl Value {
    /// A short name of the Python type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Array(_) => "numpy array",
            Value::Dtype(_) => "numpy dtype",
            Value::Global(..) => "global",
        }
    }

    /// Whether this is a `str` or `bytes` equal to `name`.
    fn is_name(&self, name: &str) -> bool {
        match self {
            Value::Str(s) => s == name,
            Value::Bytes(b) => b == name.as_bytes(),
            _ => false,
        }
    }

    /// The value under the `str` or `bytes` key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find(|(k, _)| k.is_name(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Removes and returns the value under the `str` or `bytes` key `key` of a dict.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(items) => {
                let i = items.iter().position(|(k, _)| k.is_name(key))?;
                Some(items.remove(i).1)
            }
            _ => None,
        }
    }

    /// The keys of a dict as text (`bytes` keys decoded lossily), for error messages.
    pub fn key_names(&self) -> Vec<String> {
        match self {
            Value::Dict(items) => items
                .iter()
                .map(|(k, _)| match k {
                    Value::Str(s) => s.clone(),
                    Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("<{}>", other.type_name()),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The integers of a list or tuple of ints (bools count as 0/1) or of a 1-d integer
    /// array; `None` for anything else.
    pub fn to_int_vec(&self) -> Option<Vec<i64>> {
        match self {
            Value::List(xs) | Value::Tuple(xs) => xs
                .iter()
                .map(|x| match x {
                    Value::Int(i) => Some(*i),
                    Value::Bool(b) => Some(*b as i64),
                    _ => None,
                })
                .collect(),
            Value::Array(a) if a.shape.len() == 1 => a.to_i64(),
            _ => None,
        }
    }
}

/// Reads and decodes the pickle file at `path`.
pub fn read_pickle(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_pickle(&bytes, path)
}

/// Decodes one pickle that makes up all of `bytes`; errors name `path` and the offset.
pub fn parse_pickle(bytes: &[u8], path: &Path) -> Result<Value> {
    Machine {
        data: bytes,
        pos: 0,
        op_at: 0,
        path,
        arena: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        budget: value_budget(bytes.len()),
    }
    .run()
}

/// How many values a pickle of `len` bytes may expand to. Without sharing every value is
/// one opcode; shared objects (memo `GET`s) are copied, so a few hundred bytes that double
/// a list at every level would otherwise expand to 2^60 values.
fn value_budget(len: usize) -> usize {
    len.saturating_mul(2).saturating_add(4096)
}

/// Objects above this many bytes are moved, not copied, when consumed.
const LARGE: usize = 4096;

/// Deepest nesting of containers accepted.
const MAX_DEPTH: usize = 100;

/// An object on the pickle machine's heap; containers refer to others by index.
#[derive(Debug)]
enum Node {
    Val(Value),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    /// `numpy.dtype(...)` awaiting its `BUILD`; `big_endian` from the state.
    Dtype {
        dtype: NpDtype,
        big_endian: bool,
    },
    /// `_reconstruct(ndarray, ...)` awaiting its `BUILD`.
    NewArray,
    /// A large object already consumed elsewhere.
    Moved,
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_at: usize,
    path: &'a Path,
    arena: Vec<Node>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: HashMap<u64, usize>,
    /// Values still allowed to be built (see [`value_budget`]).
    budget: usize,
}

impl<'a> Machine<'a> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::data(self.path, format!("pickle offset {}: {msg}", self.op_at))
    }

    fn take_bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(Error::data(
                self.path,
                format!(
                    "truncated pickle: the opcode at offset {} needs {n} bytes at offset {} \
                     but the file has {} bytes",
                    self.op_at,
                    self.pos,
                    self.data.len()
                ),
            ));
        };
        let data: &'a [u8] = self.data;
        self.pos = end;
        Ok(&data[end - n..end])
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take_bytes(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take_bytes(N)?.try_into().expect("N bytes"))
    }

    fn len_u64(&mut self, n: u64) -> Result<usize> {
        usize::try_from(n).map_err(|_| self.err(format!("length {n} too large")))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return Err(Error::data(
                self.path,
                format!(
                    "truncated pickle: no end of line after offset {} (opcode at {})",
                    self.pos, self.op_at
                ),
            ));
        };
        let s = std::str::from_utf8(&rest[..nl])
            .map_err(|_| self.err("line argument is not UTF-8"))?
            .to_string();
        self.pos += nl + 1;
        Ok(s)
    }

    fn push(&mut self, node: Node) {
        self.arena.push(node);
        self.stack.push(self.arena.len() - 1);
    }

    fn push_val(&mut self, v: Value) {
        self.push(Node::Val(v));
    }

    fn pop(&mut self) -> Result<usize> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("pops an empty stack (or across a MARK)"));
        }
        Ok(self.stack.pop().expect("checked"))
    }

    fn top(&self) -> Result<usize> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("needs an object on the stack"));
        }
        Ok(*self.stack.last().expect("checked"))
    }

    fn pop_mark(&mut self) -> Result<Vec<usize>> {
        let Some(m) = self.marks.pop() else {
            return Err(self.err("needs a MARK but there is none"));
        };
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, key: u64) -> Result<()> {
        let id = *self
            .stack
            .last()
            .ok_or_else(|| self.err("memoizes from an empty stack"))?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<()> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| self.err(format!("memo key {key} was never stored")))?;
        self.stack.push(id);
        Ok(())
    }

    /// The value of node `id`, moving large bytes, strings and arrays out of the heap.
    fn value(&mut self, id: usize, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("objects nested deeper than {MAX_DEPTH}")));
        }
        if self.budget == 0 {
            return Err(self.err(format!(
                "objects shared through the memo expand to more than {} values for {} bytes; \
                 not supported",
                value_budget(self.data.len()),
                self.data.len()
            )));
        }
        self.budget -= 1;
        let large = match &self.arena[id] {
            Node::Val(Value::Bytes(b)) => b.len() > LARGE,
            Node::Val(Value::Str(s)) => s.len() > LARGE,
            Node::Val(Value::Array(a)) => a.data.len() > LARGE,
            _ => false,
        };
        if large {
            let Node::Val(v) = std::mem::replace(&mut self.arena[id], Node::Moved) else {
                unreachable!("checked above")
            };
            return Ok(v);
        }
        Ok(match &self.arena[id] {
            Node::Val(v) => v.clone(),
            Node::List(ids) => Value::List(self.values(ids.clone(), depth)?),
            Node::Tuple(ids) => Value::Tuple(self.values(ids.clone(), depth)?),
            Node::Dict(items) => {
                let items = items.clone();
                let mut out = Vec::with_capacity(items.len());
                for (k, v) in items {
                    out.push((self.value(k, depth + 1)?, self.value(v, depth + 1)?));
                }
                Value::Dict(out)
            }
            Node::Dtype { dtype, big_endian } => {
                if *big_endian {
                    return Err(self.err("big-endian numpy dtypes are not supported"));
                }
                Value::Dtype(*dtype)
            }
            Node::NewArray => {
                return Err(self.err("a numpy array was created but never given its state"))
            }
            Node::Moved => {
                return Err(self.err(format!(
                    "an object larger than {LARGE} bytes is used twice; not supported"
                )))
            }
        })
    }

    fn values(&mut self, ids: Vec<usize>, depth: usize) -> Result<Vec<Value>> {
        ids.into_iter().map(|i| self.value(i, depth + 1)).collect()
    }

    fn run(mut self) -> Result<Value> {
        loop {
            self.op_at = self.pos;
            let op = self.u8()?;
            match op {
                // PROTO
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {p}")));
                    }
                }
                // FRAME: framing only groups opcodes; the content reads the same.
                0x95 => {
                    self.le::<8>()?;
                }
                b'.' => return self.stop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    if self.stack.len() > self.marks.last().copied().unwrap_or(0) {
                        self.stack.pop();
                    } else {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                b'N' => self.push_val(Value::None),
                0x88 => self.push_val(Value::Bool(true)),
                0x89 => self.push_val(Value::Bool(false)),
                b'I' => {
                    let l = self.line()?;
                    let v = match l.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(s.parse().map_err(|_| self.err(format!("bad INT {s:?}")))?),
                    };
                    self.push_val(v);
                }
                b'L' => {
                    let l = self.line()?;
                    let s = l.strip_suffix('L').unwrap_or(&l);
                    let v = s
                        .parse()
                        .map_err(|_| self.err(format!("LONG {l:?} is not an i64")))?;
                    self.push_val(Value::Int(v));
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push_val(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push_val(Value::Int(v as i64));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push_val(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        let n = i32::from_le_bytes(self.le()?);
                        usize::try_from(n).map_err(|_| self.err("negative LONG4 length"))?
                    };
                    let b = self.take_bytes(n)?.to_vec();
                    let v = long_le(&b).ok_or_else(|| {
                        self.err(format!("integer of {n} bytes does not fit in i64"))
                    })?;
                    self.push_val(Value::Int(v));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push_val(Value::Float(v));
                }
                b'F' => {
                    let l = self.line()?;
                    let v = l
                        .parse()
                        .map_err(|_| self.err(format!("bad FLOAT {l:?}")))?;
                    self.push_val(Value::Float(v));
                }
                // Python 2 str: BINSTRING, SHORT_BINSTRING.
                b'T' => {
                    let n = i32::from_le_bytes(self.le()?);
                    let n =
                        usize::try_from(n).map_err(|_| self.err("negative BINSTRING length"))?;
                    let b = self.take_bytes(n)?.to_vec();
                    self.push_val(Value::Bytes(b));
                }
                b'U' | b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take_bytes(n)?.to_vec();
                    self.push_val(Value::Bytes(b));
                }
                // BINBYTES, BINBYTES8, BYTEARRAY8.
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let b = self.take_bytes(n)?.to_vec();
                    self.push_val(Value::Bytes(b));
                }
                0x8e | 0x96 => {
                    let n = u64::from_le_bytes(self.le()?);
                    let n = self.len_u64(n)?;
                    let b = self.take_bytes(n)?.to_vec();
                    self.push_val(Value::Bytes(b));
                }
                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8.
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => u32::from_le_bytes(self.le()?) as usize,
                        0x8c => self.u8()? as usize,
                        _ => {
                            let n = u64::from_le_bytes(self.le()?);
                            self.len_u64(n)?
                        }
                    };
                    let b = self.take_bytes(n)?;
                    let s = std::str::from_utf8(b)
                        .map_err(|_| self.err("string is not valid UTF-8"))?
                        .to_string();
                    self.push_val(Value::Str(s));
                }
                b']' => self.push(Node::List(Vec::new())),
                b'}' => self.push(Node::Dict(Vec::new())),
                b')' => self.push(Node::Tuple(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return Err(self.err(format!("TUPLE{n} needs {n} objects on the stack")));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Node::Tuple(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Node::Dict(pairs));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_list(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_dict(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_dict(items)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push_val(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Val(Value::Str(m)), Node::Val(Value::Str(n))) =
                        (&self.arena[module], &self.arena[name])
                    else {
                        return Err(self.err("STACK_GLOBAL needs two str"));
                    };
                    let g = Value::Global(m.clone(), n.clone());
                    self.push_val(g);
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let node = self.reduce(func, args)?;
                    self.push(node);
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    self.build(obj, state)?;
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.le()?) as u64;
                    self.memo_put(k)?;
                }
                b'p' => {
                    let l = self.line()?;
                    let k = l.parse().map_err(|_| self.err(format!("bad PUT {l:?}")))?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.le()?) as u64;
                    self.memo_get(k)?;
                }
                b'g' => {
                    let l = self.line()?;
                    let k = l.parse().map_err(|_| self.err(format!("bad GET {l:?}")))?;
                    self.memo_get(k)?;
                }
                _ => {
                    let shown = if op.is_ascii_graphic() {
                        format!(" ('{}')", op as char)
                    } else {
                        String::new()
                    };
                    return Err(self.err(format!("unsupported pickle opcode 0x{op:02x}{shown}")));
                }
            }
        }
    }

    fn stop(mut self) -> Result<Value> {
        if !self.marks.is_empty() {
            return Err(self.err("STOP with an open MARK"));
        }
        if self.stack.len() != 1 {
            return Err(self.err(format!(
                "STOP with {} objects on the stack instead of 1",
                self.stack.len()
            )));
        }
        if self.pos != self.data.len() {
            return Err(self.err(format!(
                "{} bytes follow the STOP opcode",
                self.data.len() - self.pos
            )));
        }
        let root = self.stack[0];
        self.value(root, 0)
    }

    fn pairs(&self, items: Vec<usize>) -> Result<Vec<(usize, usize)>> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("odd number of objects for dict items"));
        }
        Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
    }

    fn extend_list(&mut self, items: Vec<usize>) -> Result<()> {
        let target = self.top()?;
        match &mut self.arena[target] {
            Node::List(xs) => {
                xs.extend(items);
                Ok(())
            }
            other => {
                let what = node_name(other);
                Err(self.err(format!("APPEND(S) to a {what}, not a list")))
            }
        }
    }

    fn extend_dict(&mut self, items: Vec<usize>) -> Result<()> {
        let pairs = self.pairs(items)?;
        let target = self.top()?;
        match &mut self.arena[target] {
            Node::Dict(xs) => {
                xs.extend(pairs);
                Ok(())
            }
            other => {
                let what = node_name(other);
                Err(self.err(format!("SETITEM(S) on a {what}, not a dict")))
            }
        }
    }

    fn tuple_items(&self, id: usize, what: &str) -> Result<Vec<usize>> {
        match &self.arena[id] {
            Node::Tuple(items) => Ok(items.clone()),
            other => Err(self.err(format!("{what} is a {}, not a tuple", node_name(other)))),
        }
    }

    /// A `str` or `bytes` argument as text.
    fn text(&self, id: usize, what: &str) -> Result<String> {
        match &self.arena[id] {
            Node::Val(Value::Str(s)) => Ok(s.clone()),
            Node::Val(Value::Bytes(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
            other => Err(self.err(format!("{what} is a {}, not a string", node_name(other)))),
        }
    }

    fn int(&self, id: usize, what: &str) -> Result<i64> {
        match &self.arena[id] {
            Node::Val(Value::Int(i)) => Ok(*i),
            Node::Val(Value::Bool(b)) => Ok(*b as i64),
            other => Err(self.err(format!("{what} is a {}, not an int", node_name(other)))),
        }
    }

    fn shape(&self, id: usize) -> Result<Vec<usize>> {
        self.tuple_items(id, "array shape")?
            .into_iter()
            .map(|d| {
                let v = self.int(d, "array dimension")?;
                usize::try_from(v).map_err(|_| self.err(format!("negative array dimension {v}")))
            })
            .collect()
    }

    fn dtype(&self, id: usize) -> Result<NpDtype> {
        match &self.arena[id] {
            Node::Dtype {
                big_endian: true, ..
            } => Err(self.err("big-endian numpy arrays are not supported")),
            Node::Dtype { dtype, .. } => Ok(*dtype),
            other => Err(self.err(format!(
                "array dtype is a {}, not a numpy dtype",
                node_name(other)
            ))),
        }
    }

    /// The bytes of node `id` (moved out when large).
    fn raw_bytes(&mut self, id: usize, what: &str) -> Result<Vec<u8>> {
        match &self.arena[id] {
            Node::Val(Value::Bytes(_)) => match self.value(id, 0)? {
                Value::Bytes(b) => Ok(b),
                _ => unreachable!("checked above"),
            },
            Node::Moved => Err(self.err(format!("{what}: its bytes are used twice"))),
            other => Err(self.err(format!("{what} is a {}, not bytes", node_name(other)))),
        }
    }

    fn array(&mut self, shape: Vec<usize>, dtype: NpDtype, data: Vec<u8>) -> Result<Node> {
        let want = shape
            .iter()
            .try_fold(dtype.itemsize(), |a, &d| a.checked_mul(d))
            .ok_or_else(|| self.err(format!("array shape {shape:?} overflows")))?;
        if data.len() != want {
            return Err(self.err(format!(
                "array of shape {shape:?} and dtype {dtype:?} needs {want} bytes, has {}",
                data.len()
            )));
        }
        Ok(Node::Val(Value::Array(NdArray { dtype, shape, data })))
    }

    fn reduce(&mut self, func: usize, args: usize) -> Result<Node> {
        let Node::Val(Value::Global(module, name)) = &self.arena[func] else {
            return Err(self.err(format!(
                "REDUCE calls a {}, not a global",
                node_name(&self.arena[func])
            )));
        };
        let (module, name) = (module.clone(), name.clone());
        let args = self.tuple_items(args, "REDUCE arguments")?;
        match (module.as_str(), name.as_str(), args.len()) {
            ("_codecs", "encode", 2) => {
                let enc = self.text(args[1], "encoding")?;
                if !matches!(enc.as_str(), "latin1" | "latin-1" | "iso-8859-1") {
                    return Err(self.err(format!("_codecs.encode with encoding {enc:?}")));
                }
                let text = match self.value(args[0], 0)? {
                    Value::Str(s) => s,
                    v => {
                        return Err(
                            self.err(format!("_codecs.encode of a {}, not a str", v.type_name()))
                        )
                    }
                };
                let bytes: Option<Vec<u8>> =
                    text.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                let bytes =
                    bytes.ok_or_else(|| self.err("latin1 text holds a char above U+00FF"))?;
                Ok(Node::Val(Value::Bytes(bytes)))
            }
            ("__builtin__" | "builtins", "bytes" | "bytearray", 0) => {
                Ok(Node::Val(Value::Bytes(Vec::new())))
            }
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct", 3) => {
                match &self.arena[args[0]] {
                    Node::Val(Value::Global(m, n)) if m == "numpy" && n == "ndarray" => {
                        Ok(Node::NewArray)
                    }
                    other => Err(self.err(format!(
                        "_reconstruct of {}, not numpy.ndarray",
                        match other {
                            Node::Val(Value::Global(m, n)) => format!("{m}.{n}"),
                            o => node_name(o).to_string(),
                        }
                    ))),
                }
            }
            ("numpy", "dtype", 1..=3) => {
                let code = self.text(args[0], "dtype code")?;
                let dtype = NpDtype::from_code(&code)
                    .ok_or_else(|| self.err(format!("unsupported numpy dtype {code:?}")))?;
                Ok(Node::Dtype {
                    dtype,
                    big_endian: code.starts_with('>'),
                })
            }
            ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer", 4) => {
                let dtype = self.dtype(args[1])?;
                let shape = self.shape(args[2])?;
                let order = self.text(args[3], "array order")?;
                if order == "F" && shape.iter().filter(|&&d| d > 1).count() > 1 {
                    return Err(self.err("Fortran-ordered arrays are not supported"));
                }
                let data = self.raw_bytes(args[0], "array buffer")?;
                self.array(shape, dtype, data)
            }
            (m, n, k) => Err(self.err(format!("unsupported callable {m}.{n} with {k} arguments"))),
        }
    }

    fn build(&mut self, obj: usize, state: usize) -> Result<()> {
        match &self.arena[obj] {
            Node::NewArray => {
                let items = self.tuple_items(state, "array state")?;
                // numpy writes (version, shape, dtype, is_fortran, data); very old
                // pickles omit the version.
                let items = match items.len() {
                    5 => &items[1..],
                    4 => &items[..],
                    n => return Err(self.err(format!("array state has {n} items, not 4 or 5"))),
                };
                let shape = self.shape(items[0])?;
                let dtype = self.dtype(items[1])?;
                let fortran = self.int(items[2], "is_fortran flag")? != 0;
                if fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
                    return Err(self.err("Fortran-ordered arrays are not supported"));
                }
                if matches!(&self.arena[items[3]], Node::List(_)) {
                    return Err(self.err("object arrays (dtype=object) are not supported"));
                }
                let data = self.raw_bytes(items[3], "array data")?;
                let node = self.array(shape, dtype, data)?;
                self.arena[obj] = node;
                Ok(())
            }
            Node::Dtype { dtype, .. } => {
                let dtype = *dtype;
                let items = self.tuple_items(state, "dtype state")?;
                if items.len() < 2 {
                    return Err(self.err("dtype state has fewer than 2 items"));
                }
                let order = self.text(items[1], "dtype byte order")?;
                let big_endian = match order.as_str() {
                    "<" | "|" | "=" => false,
                    ">" => true,
                    o => return Err(self.err(format!("unknown dtype byte order {o:?}"))),
                };
                self.arena[obj] = Node::Dtype { dtype, big_endian };
                Ok(())
            }
            other => Err(self.err(format!(
                "BUILD on a {}; only numpy arrays and dtypes are supported",
                node_name(other)
            ))),
        }
    }
}

fn node_name(n: &Node) -> &'static str {
    match n {
        Node::Val(v) => v.type_name(),
        Node::List(_) => "list",
        Node::Tuple(_) => "tuple",
        Node::Dict(_) => "dict",
        Node::Dtype { .. } => "numpy dtype",
        Node::NewArray => "numpy array",
        Node::Moved => "consumed object",
    }
}

/// A little-endian two's-complement integer (`LONG1`/`LONG4`) as `i64`, if it fits.
fn long_le(b: &[u8]) -> Option<i64> {
    if b.is_empty() {
        return Some(0);
    }
    let neg = b[b.len() - 1] & 0x80 != 0;
    let fill = if neg { 0xff } else { 0 };
    if b.len() > 8 && b[8..].iter().any(|&x| x != fill) {
        return None;
    }
    let mut buf = [fill; 8];
    let n = b.len().min(8);
    buf[..n].copy_from_slice(&b[..n]);
    let v = i64::from_le_bytes(buf);
    // The sign of the truncated value must match the full one.
    if (v < 0) != neg {
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pickle_write::{dumps, Py, Style};
    use crate::data::test_util::fixture;

    fn parse(bytes: &[u8]) -> Result<Value> {
        parse_pickle(bytes, Path::new("mem.pkl"))
    }

    /// Records 0 and 1 of the foolbox CIFAR-10 fixture: (pixels, labels).
    fn foolbox_records(range: std::ops::Range<usize>) -> (Vec<u8>, Vec<i64>) {
        let raw = std::fs::read(fixture("cifar10_foolbox_test20.bin")).unwrap();
        let mut px = Vec::new();
        let mut labels = Vec::new();
        for r in range {
            labels.push(raw[r * 3073] as i64);
            px.extend_from_slice(&raw[r * 3073 + 1..(r + 1) * 3073]);
        }
        (px, labels)
    }

    /// The ImageNet-16 fixture dict of make_pickle_fixtures.py.
    fn imagenet_dict(keys_as_bytes: bool) -> (Py, Vec<u8>, Vec<f64>) {
        let data: Vec<u8> = (0..4)
            .flat_map(|i| (0..768).map(move |j| ((i * 7 + j * 13) % 256) as u8))
            .collect();
        let mean: Vec<f64> = (0..768)
            .map(|j| (0..4).map(|i| data[i * 768 + j] as f64).sum::<f64>() / 4.0)
            .collect();
        let key = |k: &str| {
            if keys_as_bytes {
                Py::Bytes(k.as_bytes().to_vec())
            } else {
                Py::Str(k.into())
            }
        };
        let d = Py::Dict(vec![
            (key("data"), Py::u8_array(&[4, 768], &data)),
            (key("labels"), Py::ints(&[1, 120, 121, 1000])),
            (key("mean"), Py::f64_array(&[768], &mean)),
        ]);
        (d, data, mean)
    }

    #[test]
    fn writer_matches_python_byte_for_byte() {
        let (px, labels) = foolbox_records(0..2);
        let d = Py::Dict(vec![
            (Py::Bytes(b"data".to_vec()), Py::u8_array(&[2, 3072], &px)),
            (Py::Bytes(b"labels".to_vec()), Py::ints(&labels)),
        ]);
        let want = std::fs::read(fixture("cifar10_py3_proto2.pkl")).unwrap();
        assert_eq!(dumps(&d, Style::Py3Proto2), want, "cifar10_py3_proto2.pkl");

        let (px, labels) = foolbox_records(2..4);
        let d = Py::Dict(vec![
            (
                Py::Str("batch_label".into()),
                Py::Str("testing batch 1 of 1".into()),
            ),
            (Py::Str("labels".into()), Py::ints(&labels)),
            (Py::Str("data".into()), Py::u8_array(&[2, 3072], &px)),
            (
                Py::Str("filenames".into()),
                Py::List(vec![
                    Py::Str("ship_s_000000.png".into()),
                    Py::Str("airplane_s_000000.png".into()),
                ]),
            ),
        ]);
        let want = std::fs::read(fixture("cifar10_py2_style.pkl")).unwrap();
        assert_eq!(dumps(&d, Style::Py2), want, "cifar10_py2_style.pkl");

        let (d, _, _) = imagenet_dict(false);
        for (style, name) in [
            (Style::Py3Proto2, "imagenet16_proto2.pkl"),
            (Style::Py3Proto3, "imagenet16_proto3.pkl"),
            (Style::Py2, "imagenet16_py2_style.pkl"),
        ] {
            let want = std::fs::read(fixture(name)).unwrap();
            assert_eq!(dumps(&d, style), want, "{name}");
        }
    }

    #[test]
    fn reads_cifar_fixtures() {
        let (px, labels) = foolbox_records(0..2);
        let v = read_pickle(&fixture("cifar10_py3_proto2.pkl")).unwrap();
        assert_eq!(v.key_names(), vec!["data", "labels"]);
        let Some(Value::Array(a)) = v.get("data") else {
            panic!("{v:?}")
        };
        assert_eq!((a.dtype, a.shape.clone()), (NpDtype::U8, vec![2, 3072]));
        assert_eq!(a.data, px);
        assert_eq!(v.get("labels").unwrap().to_int_vec().unwrap(), labels);

        let (px, labels) = foolbox_records(2..4);
        let v = read_pickle(&fixture("cifar10_py2_style.pkl")).unwrap();
        assert_eq!(
            v.key_names(),
            vec!["batch_label", "labels", "data", "filenames"]
        );
        assert_eq!(
            v.get("batch_label"),
            Some(&Value::Bytes(b"testing batch 1 of 1".to_vec()))
        );
        let Some(Value::Array(a)) = v.get("data") else {
            panic!()
        };
        assert_eq!(a.data, px);
        assert_eq!(v.get("labels").unwrap().to_int_vec().unwrap(), labels);
        assert_eq!(
            v.get("filenames"),
            Some(&Value::List(vec![
                Value::Bytes(b"ship_s_000000.png".to_vec()),
                Value::Bytes(b"airplane_s_000000.png".to_vec())
            ]))
        );
    }

    #[test]
    fn reads_imagenet_fixtures_all_protocols() {
        let (_, data, mean) = imagenet_dict(false);
        for name in [
            "imagenet16_proto2.pkl",
            "imagenet16_proto3.pkl",
            "imagenet16_proto4.pkl",
            "imagenet16_py2_style.pkl",
        ] {
            let v = read_pickle(&fixture(name)).unwrap();
            let Some(Value::Array(a)) = v.get("data") else {
                panic!("{name}: {v:?}")
            };
            assert_eq!(a.shape, vec![4, 768], "{name}");
            assert_eq!(a.data, data, "{name}");
            assert_eq!(
                v.get("labels").unwrap().to_int_vec().unwrap(),
                vec![1, 120, 121, 1000],
                "{name}"
            );
            let Some(Value::Array(m)) = v.get("mean") else {
                panic!("{name}")
            };
            assert_eq!((m.dtype, m.shape.clone()), (NpDtype::F64, vec![768]));
            let got: Vec<f64> = m
                .data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect();
            assert_eq!(got, mean, "{name}");
        }
    }

    #[test]
    fn scalars_and_containers() {
        // pickle.dumps({'a': (None, True, False, 1.5, -2, 70000, 2**40, -2**40)}, 2)
        let b: &[u8] = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01(NK\x01\x89G?\xf8\x00\x00\x00\x00\x00\x00J\xfe\xff\xff\xffJp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x06\x00\x00\x00\x00\x00\xfftq\x02s.";
        let v = parse(b).unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Value::Tuple(vec![
                Value::None,
                Value::Int(1),
                Value::Bool(false),
                Value::Float(1.5),
                Value::Int(-2),
                Value::Int(70000),
                Value::Int(1 << 40),
                Value::Int(-(1 << 40)),
            ]))
        );
        // Memo: the same list twice; protocol 4 frame, MEMOIZE, SHORT_BINUNICODE.
        // pickle.dumps([x, x], 4) with x = [7]
        let b: &[u8] = b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94K\x07ah\x01e.";
        let v = parse(b).unwrap();
        let inner = Value::List(vec![Value::Int(7)]);
        assert_eq!(v, Value::List(vec![inner.clone(), inner]));
        assert_eq!(long_le(&[0xff]), Some(-1));
        assert_eq!(long_le(&[0x00, 0x80, 0x00]), Some(0x8000));
        assert_eq!(long_le(&[0; 9]), Some(0));
        assert_eq!(long_le(&[0, 0, 0, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(long_le(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0]), None);
    }

    #[test]
    fn writer_round_trips_through_reader() {
        let (d, data, _) = imagenet_dict(true);
        for style in [Style::Py2, Style::Py3Proto2, Style::Py3Proto3] {
            let v = parse(&dumps(&d, style)).unwrap();
            let Some(Value::Array(a)) = v.get("data") else {
                panic!()
            };
            assert_eq!(a.data, data, "{style:?}");
        }
        // Long lists are written in batches of 1000 (APPENDS), big ints and memo
        // indices past 255 (LONG_BINPUT).
        let xs: Vec<i64> = (0..2500).map(|i| i * 1_000_003 - 7).collect();
        let d = Py::Dict(
            (0..300)
                .map(|i| (Py::Str(format!("k{i}")), Py::Int(i)))
                .chain([(Py::Str("xs".into()), Py::ints(&xs))])
                .collect(),
        );
        let v = parse(&dumps(&d, Style::Py3Proto2)).unwrap();
        assert_eq!(v.get("xs").unwrap().to_int_vec().unwrap(), xs);
        assert_eq!(v.get("k299"), Some(&Value::Int(299)));
        let a = Py::i64_array(&[3], &[-1, 5, 1 << 40]);
        let v = parse(&dumps(&a, Style::Py3Proto3)).unwrap();
        assert_eq!(v.to_int_vec().unwrap(), vec![-1, 5, 1 << 40]);
    }

    #[test]
    fn every_truncation_is_an_error_naming_file_and_offset() {
        let (d, _, _) = imagenet_dict(false);
        for style in [Style::Py2, Style::Py3Proto2, Style::Py3Proto3] {
            let full = dumps(&d, style);
            for cut in (0..full.len()).step_by(97).chain([full.len() - 1]) {
                let e = parse(&full[..cut]).unwrap_err().to_string();
                assert!(e.contains("mem.pkl") && e.contains("offset"), "{cut}: {e}");
            }
        }
    }

    /// Objects shared through the memo are copied as the tree is built: 600 bytes that
    /// double a list at each of 60 levels ("billion laughs") are an error, not 2^60 copies
    /// (the reader ran until killed).
    #[test]
    fn memo_sharing_cannot_expand_without_bound() {
        let mut b = b"\x80\x02]q\x00K\x01a0".to_vec();
        for i in 1..=60u8 {
            b.extend_from_slice(&[b']', b'q', i, b'(', b'h', i - 1, b'h', i - 1, b'e']);
            if i < 60 {
                b.push(b'0');
            }
        }
        b.push(b'.');
        let t = std::time::Instant::now();
        let e = parse(&b).unwrap_err().to_string();
        assert!(
            e.contains("mem.pkl") && e.contains("shared through the memo"),
            "{e}"
        );
        assert!(t.elapsed().as_secs() < 2, "{:?}", t.elapsed());
        // Shallow sharing, as Python writes it, still reads: [x, x] with x = [7].
        let v = parse(b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94K\x07ah\x01e.");
        assert!(v.is_ok(), "{v:?}");
    }

    #[test]
    fn strictness() {
        let err = |b: &[u8]| parse(b).unwrap_err().to_string();
        // Unknown opcode (EMPTY_SET, protocol 4) at offset 2.
        let e = err(b"\x80\x04\x8f.");
        assert!(e.contains("offset 2") && e.contains("0x8f"), "{e}");
        // Trailing bytes after STOP.
        assert!(err(b"N.N").contains("follow the STOP"));
        // Two objects left.
        assert!(err(b"NN.").contains("2 objects"));
        // Unsupported callable.
        let e = err(b"cos\nsystem\nX\x02\x00\x00\x00ls\x85R.");
        assert!(e.contains("os.system"), "{e}");
        // Memo key never stored.
        assert!(err(b"h\x05.").contains("memo key 5"));
        // Protocol 6 does not exist.
        assert!(err(b"\x80\x06N.").contains("protocol 6"));
        // An array whose bytes do not fill its shape.
        let mut a = dumps(&Py::u8_array(&[2, 2], &[1, 2, 3, 4]), Style::Py3Proto3);
        let pos = a
            .windows(6)
            .position(|w| w == [b'C', 4, 1, 2, 3, 4])
            .unwrap();
        a[pos + 1] = 3;
        a.remove(pos + 5);
        let e = err(&a);
        assert!(e.contains("needs 4 bytes, has 3"), "{e}");
        // Big-endian dtype.
        let mut a = dumps(&Py::f64_array(&[1], &[1.0]), Style::Py3Proto3);
        let pos = a.windows(6).position(|w| w == b"X\x01\0\0\0<").unwrap();
        a[pos + 5] = b'>';
        let e = err(&a);
        assert!(e.contains("big-endian"), "{e}");
    }
}
