//! A writer of the Python pickles CIFAR-10 (python version) and ImageNet-16 come in.
//!
//! [`dumps`] writes dicts of numpy arrays, lists, ints and strings byte for byte as
//! CPython 3.11 with numpy 2 writes them (`pickle.dumps(d, protocol=2 or 3)`), or as
//! Python 2's cPickle wrote them ([`Style::Py2`], the style of the original ImageNet-16 and
//! CIFAR-10 files). Test code only: the fuzz campaigns' seeds and the loaders' unit tests
//! (the `safs` crate includes this file as a `#[cfg(test)]` module). Its tests in
//! `safs::data::pickle` check it against pickles written by Python.
//!
//! ```
//! use safs::data::pickle::{parse_pickle, Value};
//! use safs_e2e::pickle_write::{dumps, Py, Style};
//! let d = Py::Dict(vec![
//!     (Py::Bytes(b"data".to_vec()), Py::u8_array(&[1, 4], &[1, 2, 3, 4])),
//!     (Py::Bytes(b"labels".to_vec()), Py::ints(&[7])),
//! ]);
//! let v = parse_pickle(&dumps(&d, Style::Py2), std::path::Path::new("mem.pkl")).unwrap();
//! assert_eq!(v.get("labels").unwrap().to_int_vec().unwrap(), vec![7]);
//! assert!(matches!(v.get("data"), Some(Value::Array(_))));
//! ```

use std::collections::HashMap;

/// Which Python and protocol to imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Python 2 `cPickle`, protocol 2: `str` as `SHORT_BINSTRING`/`BINSTRING`,
    /// `numpy.core.multiarray._reconstruct`.
    Py2,
    /// Python 3, protocol 2: `bytes` as `_codecs.encode(text, 'latin1')`.
    Py3Proto2,
    /// Python 3, protocol 3: `bytes` as `SHORT_BINBYTES`/`BINBYTES`.
    Py3Proto3,
}

/// A Python object to write.
#[derive(Clone, Debug)]
pub enum Py {
    /// A `bytes` object (a `str` under [`Style::Py2`]).
    Bytes(Vec<u8>),
    /// A `str` (a Python 2 `str`, i.e. bytes, under [`Style::Py2`]).
    Str(String),
    /// An `int`.
    Int(i64),
    /// A `list`.
    List(Vec<Py>),
    /// A `dict`, items written in this order.
    Dict(Vec<(Py, Py)>),
    /// A numpy array: dtype code (`u1`, `i8`, `f8`), shape, raw little-endian bytes.
    Array(&'static str, Vec<usize>, Vec<u8>),
}

impl Py {
    /// A `uint8` array.
    pub fn u8_array(shape: &[usize], data: &[u8]) -> Py {
        Py::Array("u1", shape.to_vec(), data.to_vec())
    }

    /// A `float64` array.
    pub fn f64_array(shape: &[usize], data: &[f64]) -> Py {
        Py::Array(
            "f8",
            shape.to_vec(),
            data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )
    }

    /// An `int64` array.
    pub fn i64_array(shape: &[usize], data: &[i64]) -> Py {
        Py::Array(
            "i8",
            shape.to_vec(),
            data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )
    }

    /// A list of ints.
    pub fn ints(xs: &[i64]) -> Py {
        Py::List(xs.iter().map(|&i| Py::Int(i)).collect())
    }
}

/// The pickle of `obj` in `style`.
pub fn dumps(obj: &Py, style: Style) -> Vec<u8> {
    let mut w = Writer {
        out: vec![0x80, if style == Style::Py3Proto3 { 3 } else { 2 }],
        style,
        next: 0,
        shared: HashMap::new(),
    };
    w.save(obj);
    w.out.push(b'.');
    w.out
}

struct Writer {
    out: Vec<u8>,
    style: Style,
    next: u32,
    /// Memo slots of objects that Python shares by identity (globals, interned
    /// strings, dtype singletons), by a descriptive key.
    shared: HashMap<String, u32>,
}

impl Writer {
    fn put(&mut self) -> u32 {
        let i = self.next;
        if i < 256 {
            self.out.extend([b'q', i as u8]);
        } else {
            self.out.push(b'r');
            self.out.extend(i.to_le_bytes());
        }
        self.next += 1;
        i
    }

    fn get(&mut self, i: u32) {
        if i < 256 {
            self.out.extend([b'h', i as u8]);
        } else {
            self.out.push(b'j');
            self.out.extend(i.to_le_bytes());
        }
    }

    /// Writes a shared object once (`write` returns its memo slot), then memo
    /// references to it.
    fn shared(&mut self, key: String, write: impl FnOnce(&mut Self) -> u32) {
        if let Some(&i) = self.shared.get(&key) {
            self.get(i);
        } else {
            let i = write(self);
            self.shared.insert(key, i);
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.shared(format!("global {module} {name}"), |w| {
            w.out.push(b'c');
            w.out.extend(format!("{module}\n{name}\n").as_bytes());
            w.put()
        });
    }

    fn int(&mut self, v: i64) {
        if (0..256).contains(&v) {
            self.out.extend([b'K', v as u8]);
        } else if (0..65536).contains(&v) {
            self.out.push(b'M');
            self.out.extend((v as u16).to_le_bytes());
        } else if let Ok(v) = i32::try_from(v) {
            self.out.push(b'J');
            self.out.extend(v.to_le_bytes());
        } else {
            let b = v.to_le_bytes();
            let mut n = 8;
            while n > 1
                && ((b[n - 1] == 0 && b[n - 2] & 0x80 == 0)
                    || (b[n - 1] == 0xff && b[n - 2] & 0x80 != 0))
            {
                n -= 1;
            }
            self.out.extend([0x8a, n as u8]);
            self.out.extend(&b[..n]);
        }
    }

    fn str(&mut self, s: &str) {
        if self.style == Style::Py2 {
            return self.py2_string(s.as_bytes());
        }
        self.out.push(b'X');
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
        self.put();
    }

    fn py2_string(&mut self, b: &[u8]) {
        if b.len() < 256 {
            self.out.extend([b'U', b.len() as u8]);
        } else {
            self.out.push(b'T');
            self.out.extend((b.len() as u32).to_le_bytes());
        }
        self.out.extend(b);
        self.put();
    }

    fn bytes(&mut self, b: &[u8]) {
        match self.style {
            Style::Py2 => self.py2_string(b),
            Style::Py3Proto3 => {
                if b.len() < 256 {
                    self.out.extend([b'C', b.len() as u8]);
                } else {
                    self.out.push(b'B');
                    self.out.extend((b.len() as u32).to_le_bytes());
                }
                self.out.extend(b);
                self.put();
            }
            Style::Py3Proto2 => {
                // save_reduce(codecs.encode, (str(b, 'latin1'), 'latin1'), obj=b)
                self.global("_codecs", "encode");
                let text: String = b.iter().map(|&c| c as char).collect();
                self.str(&text);
                self.shared("str latin1".into(), |w| {
                    w.str("latin1");
                    w.next - 1
                });
                self.out.push(0x86);
                self.put();
                self.out.push(b'R');
                self.put();
            }
        }
    }

    /// A tuple of the already-written items: TUPLE1-3 or MARK ... TUPLE.
    fn tuple_of(&mut self, n: usize, write_items: impl FnOnce(&mut Self)) {
        if (1..=3).contains(&n) {
            write_items(self);
            self.out.push(0x84 + n as u8);
        } else {
            self.out.push(b'(');
            write_items(self);
            self.out.push(b't');
        }
        self.put();
    }

    fn batched(&mut self, n: usize, one: u8, many: u8, mut item: impl FnMut(&mut Self, usize)) {
        let mut i = 0;
        while i < n {
            let k = (n - i).min(1000);
            if k == 1 {
                item(self, i);
                self.out.push(one);
            } else {
                self.out.push(b'(');
                for j in i..i + k {
                    item(self, j);
                }
                self.out.push(many);
            }
            i += k;
        }
    }

    fn module(&self) -> &'static str {
        if self.style == Style::Py2 {
            "numpy.core.multiarray"
        } else {
            "numpy._core.multiarray"
        }
    }

    fn dtype(&mut self, code: &'static str) {
        self.shared(format!("dtype {code}"), |w| {
            w.global("numpy", "dtype");
            w.str(code);
            w.out.extend([0x89, 0x88, 0x87]);
            w.put();
            w.out.push(b'R');
            let slot = w.put();
            let order = if code.ends_with('1') { "|" } else { "<" };
            w.out.extend([b'(', b'K', 3]);
            w.shared(format!("str {order}"), |w| {
                w.str(order);
                w.next - 1
            });
            w.out.extend(b"NNN");
            w.int(-1);
            w.int(-1);
            w.int(0);
            w.out.push(b't');
            w.put();
            w.out.push(b'b');
            slot
        });
    }

    fn save(&mut self, obj: &Py) {
        match obj {
            Py::Bytes(b) => self.bytes(b),
            Py::Str(s) => self.str(s),
            Py::Int(i) => self.int(*i),
            Py::List(xs) => {
                self.out.push(b']');
                self.put();
                self.batched(xs.len(), b'a', b'e', |w, i| w.save(&xs[i]));
            }
            Py::Dict(items) => {
                self.out.push(b'}');
                self.put();
                self.batched(items.len(), b's', b'u', |w, i| {
                    w.save(&items[i].0);
                    w.save(&items[i].1);
                });
            }
            Py::Array(code, shape, data) => {
                let module = self.module();
                self.global(module, "_reconstruct");
                self.global("numpy", "ndarray");
                self.tuple_of(1, |w| w.int(0));
                // numpy's constant b'b' is one object, shared by every array.
                let b = self.shared.get("bytes b").copied();
                match b {
                    Some(i) => self.get(i),
                    None => {
                        self.bytes(b"b");
                        self.shared.insert("bytes b".into(), self.next - 1);
                    }
                }
                self.out.push(0x87);
                self.put();
                self.out.push(b'R');
                self.put();
                self.out.extend([b'(', b'K', 1]);
                self.tuple_of(shape.len(), |w| {
                    for &d in shape {
                        w.int(d as i64);
                    }
                });
                self.dtype(code);
                self.out.push(0x89);
                self.bytes(data);
                self.out.push(b't');
                self.put();
                self.out.push(b'b');
            }
        }
    }
}
