;; The export's edit kernels, in WebAssembly with 128-bit SIMD: the float64 arithmetic of the row and
;; column projections, on float32 rows or on bf16 rows as stored. Each computes exactly what the JavaScript
;; kernels of src/projection.ts and src/safetensors/dtype.ts compute, bit for bit: the same float64
;; operations in the same order (SIMD lanes only run along independent outputs; the one sum along a row,
;; `dot`, stays sequential), float32 results rounded once, bf16 rounded to nearest even with NaNs kept NaN.
;; Pointers are byte offsets into the module's own memory; counts are elements.
;; Build: npm run build:kernels (wabt's wat2wasm); test/kernels.test.ts checks that edit.wasm is this file's build.
(module
  (memory (export "memory") 1)

  ;; One float32 bit pattern rounded to bf16: nearest, ties to even; a NaN keeps its top bits with the quiet bit set.
  (func $round1 (param $x i32) (result i32)
    (select
      (i32.or (i32.shr_u (local.get $x) (i32.const 16)) (i32.const 0x40))
      (i32.shr_u
        (i32.add (i32.add (local.get $x) (i32.const 0x7fff)) (i32.and (i32.shr_u (local.get $x) (i32.const 16)) (i32.const 1)))
        (i32.const 16))
      (i32.and
        (i32.eq (i32.and (local.get $x) (i32.const 0x7f800000)) (i32.const 0x7f800000))
        (i32.ne (i32.and (local.get $x) (i32.const 0x7fffff)) (i32.const 0)))))

  ;; Four float32 bit patterns rounded to bf16 as $round1 says, lane by lane: the four 16-bit results packed in
  ;; order into an i64 (to be stored as 8 bytes).
  (func $round4 (param $x v128) (result i64)
    (local.set $x
      (v128.bitselect
        (v128.or (i32x4.shr_u (local.get $x) (i32.const 16)) (v128.const i32x4 0x40 0x40 0x40 0x40))
        (i32x4.shr_u
          (i32x4.add
            (i32x4.add (local.get $x) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff))
            (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (v128.const i32x4 1 1 1 1)))
          (i32.const 16))
        (v128.and
          (i32x4.eq (v128.and (local.get $x) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
          (i32x4.ne (v128.and (local.get $x) (v128.const i32x4 0x7fffff 0x7fffff 0x7fffff 0x7fffff)) (v128.const i32x4 0 0 0 0)))))
    (i64x2.extract_lane 0 (i16x8.narrow_i32x4_u (local.get $x) (local.get $x))))

  ;; acc[j] += a * row[j] in float64 (row float32), for j < n: one row's share of r^T W.
  (func (export "accumulate") (param $acc i32) (param $row i32) (param $a f64) (param $n i32)
    (local $j i32) (local $end i32) (local $av v128) (local $p i32)
    (local.set $end (i32.and (local.get $n) (i32.const -2)))
    (local.set $av (f64x2.splat (local.get $a)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $j) (local.get $end)))
        (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
        (v128.store (local.get $p)
          (f64x2.add
            (v128.load (local.get $p))
            (f64x2.mul (local.get $av) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))))))
        (local.set $j (i32.add (local.get $j) (i32.const 2)))
        (br $simd)))
    (if (i32.lt_u (local.get $j) (local.get $n))
      (then
        (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
        (f64.store (local.get $p)
          (f64.add
            (f64.load (local.get $p))
            (f64.mul (local.get $a) (f64.promote_f32 (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))))))))

  ;; out[j] = float32(row[j] - a * vec[j]) (row float32, vec float64), for j < n: a projected row.
  (func (export "subtract_scaled") (param $out i32) (param $row i32) (param $a f64) (param $vec i32) (param $n i32)
    (local $j i32) (local $end i32) (local $av v128)
    (local.set $end (i32.and (local.get $n) (i32.const -2)))
    (local.set $av (f64x2.splat (local.get $a)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $j) (local.get $end)))
        (i64.store
          (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2)))
          (i64x2.extract_lane 0
            (f32x4.demote_f64x2_zero
              (f64x2.sub
                (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))
                (f64x2.mul (local.get $av) (v128.load (i32.add (local.get $vec) (i32.shl (local.get $j) (i32.const 3)))))))))
        (local.set $j (i32.add (local.get $j) (i32.const 2)))
        (br $simd)))
    (if (i32.lt_u (local.get $j) (local.get $n))
      (then
        (f32.store
          (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2)))
          (f32.demote_f64
            (f64.sub
              (f64.promote_f32 (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))
              (f64.mul (local.get $a) (f64.load (i32.add (local.get $vec) (i32.shl (local.get $j) (i32.const 3)))))))))))

  ;; The sum of row[i] * vec[i] in float64, added in order i = 0, 1, ... (as the JavaScript kernel does).
  (func (export "dot") (param $row i32) (param $vec i32) (param $n i32) (result f64)
    (local $i i32) (local $s f64)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $s
          (f64.add (local.get $s)
            (f64.mul
              (f64.promote_f32 (f32.load (i32.add (local.get $row) (i32.shl (local.get $i) (i32.const 2)))))
              (f64.load (i32.add (local.get $vec) (i32.shl (local.get $i) (i32.const 3)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $s))

  ;; The same kernels reading (and writing) rows as stored in bf16, with no float32 copy of the row: each value
  ;; is widened exactly (its 16 bits become a float32's top half), and each float32 result is rounded to bf16
  ;; as $round1 says. They work four values at a time: $f holds four bf16 values as float32 lanes.

  ;; acc[j] += a * row[j], row in bf16.
  (func (export "accumulate_bf16") (param $acc i32) (param $row i32) (param $a f64) (param $n i32)
    (local $j i32) (local $end i32) (local $av v128) (local $f v128) (local $p i32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (local.set $av (f64x2.splat (local.get $a)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $j) (local.get $end)))
        (local.set $f (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 1))))) (i32.const 16)))
        (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
        (v128.store (local.get $p)
          (f64x2.add (v128.load (local.get $p)) (f64x2.mul (local.get $av) (f64x2.promote_low_f32x4 (local.get $f)))))
        (v128.store offset=16 (local.get $p)
          (f64x2.add (v128.load offset=16 (local.get $p))
            (f64x2.mul (local.get $av) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $f) (local.get $f))))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $simd)))
    (block $done
      (loop $tail
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
        (f64.store (local.get $p)
          (f64.add (f64.load (local.get $p))
            (f64.mul (local.get $a) (f64.promote_f32 (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 1)))) (i32.const 16)))))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $tail))))

  ;; out[j] = bf16(float32(row[j] - a * vec[j])), row and out in bf16, vec float64.
  (func (export "subtract_scaled_bf16") (param $out i32) (param $row i32) (param $a f64) (param $vec i32) (param $n i32)
    (local $j i32) (local $end i32) (local $av v128) (local $f v128) (local $x v128) (local $v i32) (local $y i32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (local.set $av (f64x2.splat (local.get $a)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $j) (local.get $end)))
        (local.set $f (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 1))))) (i32.const 16)))
        (local.set $v (i32.add (local.get $vec) (i32.shl (local.get $j) (i32.const 3))))
        ;; the four float32 results, side by side
        (local.set $x
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
            (f32x4.demote_f64x2_zero (f64x2.sub (f64x2.promote_low_f32x4 (local.get $f)) (f64x2.mul (local.get $av) (v128.load (local.get $v)))))
            (f32x4.demote_f64x2_zero
              (f64x2.sub
                (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $f) (local.get $f)))
                (f64x2.mul (local.get $av) (v128.load offset=16 (local.get $v)))))))
        (i64.store (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 1))) (call $round4 (local.get $x)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $simd)))
    (block $done
      (loop $tail
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $y
          (i32.reinterpret_f32
            (f32.demote_f64
              (f64.sub
                (f64.promote_f32 (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 1)))) (i32.const 16))))
                (f64.mul (local.get $a) (f64.load (i32.add (local.get $vec) (i32.shl (local.get $j) (i32.const 3)))))))))
        (i32.store16 (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 1))) (call $round1 (local.get $y)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $tail))))

  ;; dot with the row in bf16: the sum of row[i] * vec[i] in float64, in order.
  (func (export "dot_bf16") (param $row i32) (param $vec i32) (param $n i32) (result f64)
    (local $i i32) (local $s f64)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $s
          (f64.add (local.get $s)
            (f64.mul
              (f64.promote_f32 (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $row) (i32.shl (local.get $i) (i32.const 1)))) (i32.const 16))))
              (f64.load (i32.add (local.get $vec) (i32.shl (local.get $i) (i32.const 3)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $s))

  ;; bf16 rows to float32 and back, for the kernels that work on float32 rows: out[j] = row[j] widened exactly
  ;; (its 16 bits become a float32's top half), as decodeToFloat32 does.
  (func (export "widen_bf16") (param $out i32) (param $row i32) (param $n i32)
    (local $j i32) (local $end i32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $j) (local.get $end)))
        (v128.store
          (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2)))
          (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 1))))) (i32.const 16)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $simd)))
    (block $done
      (loop $tail
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (i32.store
          (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2)))
          (i32.shl (i32.load16_u (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 1)))) (i32.const 16)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $tail))))

  ;; out[j] = bf16(row[j]) (row float32), rounded as $round1 says, as encodeFromFloat32 does.
  (func (export "narrow_bf16") (param $out i32) (param $row i32) (param $n i32)
    (local $j i32) (local $end i32) (local $x v128)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $j) (local.get $end)))
        (local.set $x (v128.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))
        (i64.store (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 1))) (call $round4 (local.get $x)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $simd)))
    (block $done
      (loop $tail
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (i32.store16
          (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 1)))
          (call $round1 (i32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $tail))))

  ;; The norm-preserving edit's kernels (float32 rows; bf16 rows are widened first, f16 rows decoded in JavaScript).

  ;; before[j] += row[j]^2 and after[j] += (row[j] - a * coef[j])^2 in float64, for j < n: one row's share of
  ;; each column's squared length before and after the projection.
  (func (export "accumulate_norms") (param $before i32) (param $after i32) (param $row i32) (param $a f64) (param $coef i32) (param $n i32)
    (local $j i32) (local $end i32) (local $av v128) (local $w v128) (local $e v128) (local $pb i32) (local $pa i32)
    (local $ws f64) (local $es f64)
    (local.set $end (i32.and (local.get $n) (i32.const -2)))
    (local.set $av (f64x2.splat (local.get $a)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $j) (local.get $end)))
        (local.set $w (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))))
        (local.set $e (f64x2.sub (local.get $w) (f64x2.mul (local.get $av) (v128.load (i32.add (local.get $coef) (i32.shl (local.get $j) (i32.const 3)))))))
        (local.set $pb (i32.add (local.get $before) (i32.shl (local.get $j) (i32.const 3))))
        (local.set $pa (i32.add (local.get $after) (i32.shl (local.get $j) (i32.const 3))))
        (v128.store (local.get $pb) (f64x2.add (v128.load (local.get $pb)) (f64x2.mul (local.get $w) (local.get $w))))
        (v128.store (local.get $pa) (f64x2.add (v128.load (local.get $pa)) (f64x2.mul (local.get $e) (local.get $e))))
        (local.set $j (i32.add (local.get $j) (i32.const 2)))
        (br $simd)))
    (if (i32.lt_u (local.get $j) (local.get $n))
      (then
        (local.set $ws (f64.promote_f32 (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))))
        (local.set $es (f64.sub (local.get $ws) (f64.mul (local.get $a) (f64.load (i32.add (local.get $coef) (i32.shl (local.get $j) (i32.const 3)))))))
        (local.set $pb (i32.add (local.get $before) (i32.shl (local.get $j) (i32.const 3))))
        (local.set $pa (i32.add (local.get $after) (i32.shl (local.get $j) (i32.const 3))))
        (f64.store (local.get $pb) (f64.add (f64.load (local.get $pb)) (f64.mul (local.get $ws) (local.get $ws))))
        (f64.store (local.get $pa) (f64.add (f64.load (local.get $pa)) (f64.mul (local.get $es) (local.get $es)))))))

  ;; out[j] = float32((row[j] - a * vec[j]) * factors[j]) (row float32; vec and factors float64), for j < n: a
  ;; projected row rescaled column by column.
  (func (export "subtract_scaled_times") (param $out i32) (param $row i32) (param $a f64) (param $vec i32) (param $factors i32) (param $n i32)
    (local $j i32) (local $end i32) (local $av v128)
    (local.set $end (i32.and (local.get $n) (i32.const -2)))
    (local.set $av (f64x2.splat (local.get $a)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $j) (local.get $end)))
        (i64.store
          (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2)))
          (i64x2.extract_lane 0
            (f32x4.demote_f64x2_zero
              (f64x2.mul
                (f64x2.sub
                  (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))
                  (f64x2.mul (local.get $av) (v128.load (i32.add (local.get $vec) (i32.shl (local.get $j) (i32.const 3))))))
                (v128.load (i32.add (local.get $factors) (i32.shl (local.get $j) (i32.const 3))))))))
        (local.set $j (i32.add (local.get $j) (i32.const 2)))
        (br $simd)))
    (if (i32.lt_u (local.get $j) (local.get $n))
      (then
        (f32.store
          (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2)))
          (f32.demote_f64
            (f64.mul
              (f64.sub
                (f64.promote_f32 (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))
                (f64.mul (local.get $a) (f64.load (i32.add (local.get $vec) (i32.shl (local.get $j) (i32.const 3))))))
              (f64.load (i32.add (local.get $factors) (i32.shl (local.get $j) (i32.const 3))))))))))

  ;; One row's squared length before and after the projection x - c vec, summed in order i = 0, 1, ... into
  ;; sums[0] and sums[1] (float64), as the JavaScript row kernel sums them.
  (func (export "row_norms") (param $sums i32) (param $row i32) (param $c f64) (param $vec i32) (param $n i32)
    (local $i i32) (local $w f64) (local $e f64) (local $b f64) (local $s f64)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $w (f64.promote_f32 (f32.load (i32.add (local.get $row) (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $e (f64.sub (local.get $w) (f64.mul (local.get $c) (f64.load (i32.add (local.get $vec) (i32.shl (local.get $i) (i32.const 3)))))))
        (local.set $b (f64.add (local.get $b) (f64.mul (local.get $w) (local.get $w))))
        (local.set $s (f64.add (local.get $s) (f64.mul (local.get $e) (local.get $e))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (f64.store (local.get $sums) (local.get $b))
    (f64.store offset=8 (local.get $sums) (local.get $s)))
)
