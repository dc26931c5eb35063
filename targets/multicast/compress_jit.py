"""Table compression's inner loops, compiled with llvmlite (used by compress.py).

Each kernel does what a pure Python function of compress.py does, result for result (that
function is the reference: the property tests compare the two on random tables):

* :func:`merge_groups` — ``compress._merge_groups``: every route group's merges, optionally
  the split-first pass (merge a run of the group's entries, sorted by key, and halve it on its
  highest differing bit until the merge meets no conflict), then the greedy pairs of PACMAN's
  ordered pair compressor (pairs in the same order, the conflict that refused the last merge
  tried first).  A merge of group ``p`` (route id ``r``) meets a *conflict* when it shares a
  key with an entry whose group is after ``p`` (or a defaultable non-member) and whose route id
  is not ``r``; the table is disjoint prefixes sorted by key, so the entries that can share a
  key with a key/mask are those that start between its least and greatest key and the one
  before (found by binary search).
* :func:`ortc_place` — ``compress._ortc_place``: ORTC's Cartesian tree and placement, route
  sets as bit sets of as many 64-bit words as the routes need.
* :func:`ordered_covering` — ``compress._Minimiser`` with ``strict`` (Ordered Covering as rig
  has it, on disjoint prefixes), built with llvmlite's IR builder through a small structured
  layer (:class:`_Emitter`).
* :func:`compress_batch` — ``compress._compress`` with ``thorough`` false on each of a list
  of tables, the whole of ``effort="fast"``: per table, route numbering, the disjoint-prefix
  test, the floor, both route-group variants (with PACMAN's default-route removal after the
  first), ORTC's table and rig's Ordered Covering on small tables, each only while the table is
  above its floor, and the shortest kept (``nmc_mc_compress``, which calls the three above by
  address), in one kernel call for all the tables (``nmc_mc_compress_batch``: the tables'
  columns, :class:`~.table.RouteTables`, read where they are; the results' columns, flat,
  out; both IR builder).  Python's work is a few calls per batch, none per table or entry.  A
  table of overlapping entries is left to ``compress._compress``.

The kernels are compiled once per process, on first use (:func:`prepare`), by
:func:`nmc.targets.cpu.jit.compile_module`, whose on-disk object cache makes a later process's
first use a load, not a compilation.  Everything a kernel reads and writes is in buffers of
64-bit words (and flag bytes), so a call costs one ctypes transition.
"""

from __future__ import annotations

import ctypes
import threading
from array import array
from contextlib import contextmanager

from llvmlite import ir

import numpy as np

from nmc.targets.multicast.table import RouteTables

FUNCTION = "nmc_mc_merge_groups"

# buffer layout (uint64 words), R route ids, G groups, N table entries:
#   group[R] (a route id's group)  rid[G] (a group's route id)  start[G+1] (out)  length[G] (out)
#   key[N] mask[N] dflt[N] (out: the groups' merged entries)  tkey[N] tmask[N] tlevel[N] (out) trid[N] tdflt[N]
IR = r"""
define internal i64 @upper(ptr %tk, i64 %n, i64 %x) {
entry:
  br label %loop
loop:
  %lo = phi i64 [0, %entry], [%lo2, %step]
  %hi = phi i64 [%n, %entry], [%hi2, %step]
  %more = icmp ult i64 %lo, %hi
  br i1 %more, label %step, label %done
step:
  %span = sub i64 %hi, %lo
  %half = lshr i64 %span, 1
  %mid = add i64 %lo, %half
  %pm = getelementptr inbounds i64, ptr %tk, i64 %mid
  %km = load i64, ptr %pm
  %le = icmp ule i64 %km, %x
  %mid1 = add i64 %mid, 1
  %lo2 = select i1 %le, i64 %mid1, i64 %lo
  %hi2 = select i1 %le, i64 %hi, i64 %mid
  br label %loop
done:
  ret i64 %lo
}

; the index of the first conflict of group level %p, route %r that shares a key with %mk/%mm,
; or -1
define internal i64 @conflict(ptr %tk, ptr %tm, ptr %tl, ptr %tr, i64 %n, i64 %full, i64 %p, i64 %r,
                              i64 %mk, i64 %mm) {
entry:
  %u = call i64 @upper(ptr %tk, i64 %n, i64 %mk)
  %lo0 = sub i64 %u, 1
  %neg = icmp eq i64 %u, 0
  %lo = select i1 %neg, i64 0, i64 %lo0
  %inv = xor i64 %full, %mm
  %top = or i64 %mk, %inv
  %hi = call i64 @upper(ptr %tk, i64 %n, i64 %top)
  br label %loop
loop:
  %t = phi i64 [%lo, %entry], [%t1, %next]
  %more = icmp ult i64 %t, %hi
  br i1 %more, label %body, label %none
body:
  %pk = getelementptr inbounds i64, ptr %tk, i64 %t
  %k = load i64, ptr %pk
  %pmk = getelementptr inbounds i64, ptr %tm, i64 %t
  %m = load i64, ptr %pmk
  %a = and i64 %k, %mm
  %b = and i64 %m, %mk
  %meet = icmp eq i64 %a, %b
  br i1 %meet, label %who, label %next
who:
  %pl = getelementptr inbounds i64, ptr %tl, i64 %t
  %l = load i64, ptr %pl
  %above = icmp ugt i64 %l, %p
  %pr = getelementptr inbounds i64, ptr %tr, i64 %t
  %rt = load i64, ptr %pr
  %other = icmp ne i64 %rt, %r
  %both = and i1 %above, %other
  br i1 %both, label %found, label %next
next:
  %t1 = add i64 %t, 1
  br label %loop
found:
  ret i64 %t
none:
  ret i64 -1
}

define i64 @nmc_mc_merge_groups(ptr noalias %buf, i64 %ng, i64 %nroutes, i64 %n, i64 %full, i64 %split,
                                 i64 %dam) {
entry:
  %sv = alloca i64
  %ov = alloca i64
  %lenv = alloca i64
  %iv = alloca i64
  %jv = alloca i64
  %k1v = alloca i64
  %m1v = alloca i64
  %hb = alloca i64
  %bkv = alloca i64
  %bmv = alloca i64
  %pv = alloca i64
  %stack = alloca [260 x i64]
  %spv = alloca i64
  %ng1 = add i64 %ng, 1
  %rids = getelementptr inbounds i64, ptr %buf, i64 %nroutes
  %start = getelementptr inbounds i64, ptr %rids, i64 %ng
  %lens = getelementptr inbounds i64, ptr %start, i64 %ng1
  %gk = getelementptr inbounds i64, ptr %lens, i64 %ng
  %gm = getelementptr inbounds i64, ptr %gk, i64 %n
  %gd = getelementptr inbounds i64, ptr %gm, i64 %n
  %tk = getelementptr inbounds i64, ptr %gd, i64 %n
  %tm = getelementptr inbounds i64, ptr %tk, i64 %n
  %tl = getelementptr inbounds i64, ptr %tm, i64 %n
  %tr = getelementptr inbounds i64, ptr %tl, i64 %n
  %td = getelementptr inbounds i64, ptr %tr, i64 %n
  %dosplit = icmp ne i64 %split, 0
  %asmembers = icmp ne i64 %dam, 0
  br label %zero
; ---- levels and the groups' members (counting sort by group, key order kept)
zero:
  %z = phi i64 [0, %entry], [%z1, %zstep]
  %zmore = icmp ule i64 %z, %ng
  br i1 %zmore, label %zstep, label %count
zstep:
  %pz = getelementptr inbounds i64, ptr %start, i64 %z
  store i64 0, ptr %pz
  %z1 = add i64 %z, 1
  br label %zero
count:
  %cj = phi i64 [0, %zero], [%cj1, %cnext]
  %cmore = icmp ult i64 %cj, %n
  br i1 %cmore, label %cbody, label %sum
cbody:
  %pcd = getelementptr inbounds i64, ptr %td, i64 %cj
  %cdv = load i64, ptr %pcd
  %cdef = icmp ne i64 %cdv, 0
  %cout = xor i1 %asmembers, true
  %cnon = and i1 %cdef, %cout
  %pcl = getelementptr inbounds i64, ptr %tl, i64 %cj
  br i1 %cnon, label %cnonmember, label %cmember
cnonmember:
  store i64 %ng, ptr %pcl
  br label %cnext
cmember:
  %pcr = getelementptr inbounds i64, ptr %tr, i64 %cj
  %crv = load i64, ptr %pcr
  %pcp = getelementptr inbounds i64, ptr %buf, i64 %crv
  %clv = load i64, ptr %pcp
  store i64 %clv, ptr %pcl
  %clv1 = add i64 %clv, 1
  %pcs = getelementptr inbounds i64, ptr %start, i64 %clv1
  %csv = load i64, ptr %pcs
  %csv1 = add i64 %csv, 1
  store i64 %csv1, ptr %pcs
  br label %cnext
cnext:
  %cj1 = add i64 %cj, 1
  br label %count
sum:
  %sg = phi i64 [0, %count], [%sg1, %sumstep]
  %acc = phi i64 [0, %count], [%acc1, %sumstep]
  %smore0 = icmp ult i64 %sg, %ng
  br i1 %smore0, label %sumstep, label %fill
sumstep:
  %sg1 = add i64 %sg, 1
  %psg = getelementptr inbounds i64, ptr %start, i64 %sg1
  %sgv = load i64, ptr %psg
  %acc1 = add i64 %acc, %sgv
  store i64 %acc1, ptr %psg
  %plc = getelementptr inbounds i64, ptr %lens, i64 %sg
  store i64 %acc, ptr %plc
  br label %sum
fill:
  %fj = phi i64 [0, %sum], [%fj1, %fnext]
  %fmore = icmp ult i64 %fj, %n
  br i1 %fmore, label %fbody, label %groups
fbody:
  %pfl = getelementptr inbounds i64, ptr %tl, i64 %fj
  %flv = load i64, ptr %pfl
  %fin = icmp ult i64 %flv, %ng
  br i1 %fin, label %fput, label %fnext
fput:
  %pfc = getelementptr inbounds i64, ptr %lens, i64 %flv
  %fat = load i64, ptr %pfc
  %fat1 = add i64 %fat, 1
  store i64 %fat1, ptr %pfc
  %pfk = getelementptr inbounds i64, ptr %tk, i64 %fj
  %fkv = load i64, ptr %pfk
  %pgk = getelementptr inbounds i64, ptr %gk, i64 %fat
  store i64 %fkv, ptr %pgk
  %pfm = getelementptr inbounds i64, ptr %tm, i64 %fj
  %fmv = load i64, ptr %pfm
  %pgm = getelementptr inbounds i64, ptr %gm, i64 %fat
  store i64 %fmv, ptr %pgm
  %pfd = getelementptr inbounds i64, ptr %td, i64 %fj
  %fdv = load i64, ptr %pfd
  %pgd = getelementptr inbounds i64, ptr %gd, i64 %fat
  store i64 %fdv, ptr %pgd
  br label %fnext
fnext:
  %fj1 = add i64 %fj, 1
  br label %fill
groups:
  store i64 0, ptr %pv
  store i64 0, ptr %sv
  br label %group
group:
  %p = load i64, ptr %pv
  %gmore = icmp ult i64 %p, %ng
  br i1 %gmore, label %gbody, label %exit
gbody:
  %ps = getelementptr inbounds i64, ptr %start, i64 %p
  %s = load i64, ptr %ps
  %p1 = add i64 %p, 1
  %pe = getelementptr inbounds i64, ptr %start, i64 %p1
  %e = load i64, ptr %pe
  %glen = sub i64 %e, %s
  %prr = getelementptr inbounds i64, ptr %rids, i64 %p
  %r = load i64, ptr %prr
  %k = getelementptr inbounds i64, ptr %gk, i64 %s
  %m = getelementptr inbounds i64, ptr %gm, i64 %s
  %d = getelementptr inbounds i64, ptr %gd, i64 %s
  store i64 %glen, ptr %lenv
  br i1 %dosplit, label %sinit, label %pairs

; ---- split-first: ranges [a, b) of the group on a stack, the left one on top
sinit:
  store i64 0, ptr %ov
  %s0 = getelementptr inbounds i64, ptr %stack, i64 0
  store i64 0, ptr %s0
  %s1 = getelementptr inbounds i64, ptr %stack, i64 1
  store i64 %glen, ptr %s1
  store i64 2, ptr %spv
  br label %spop
spop:
  %sp = load i64, ptr %spv
  %sempty = icmp eq i64 %sp, 0
  br i1 %sempty, label %sdone, label %srange
srange:
  %spb = sub i64 %sp, 1
  %spa = sub i64 %sp, 2
  store i64 %spa, ptr %spv
  %pb = getelementptr inbounds i64, ptr %stack, i64 %spb
  %b = load i64, ptr %pb
  %pa = getelementptr inbounds i64, ptr %stack, i64 %spa
  %a = load i64, ptr %pa
  %pka = getelementptr inbounds i64, ptr %k, i64 %a
  %ka = load i64, ptr %pka
  %pma = getelementptr inbounds i64, ptr %m, i64 %a
  %ma = load i64, ptr %pma
  %pda = getelementptr inbounds i64, ptr %d, i64 %a
  %da = load i64, ptr %pda
  %a1 = add i64 %a, 1
  br label %smerge
smerge:
  %sj = phi i64 [%a1, %srange], [%sj1, %smstep]
  %ck = phi i64 [%ka, %srange], [%ck1, %smstep]
  %cm = phi i64 [%ma, %srange], [%cm1, %smstep]
  %cd = phi i64 [%da, %srange], [%cd1, %smstep]
  %smore = icmp ult i64 %sj, %b
  br i1 %smore, label %smstep, label %smdone
smstep:
  %psk = getelementptr inbounds i64, ptr %k, i64 %sj
  %skj = load i64, ptr %psk
  %psm = getelementptr inbounds i64, ptr %m, i64 %sj
  %smj = load i64, ptr %psm
  %psd = getelementptr inbounds i64, ptr %d, i64 %sj
  %sdj = load i64, ptr %psd
  %sx = xor i64 %ck, %skj
  %snx = xor i64 %sx, -1
  %sm1 = and i64 %smj, %snx
  %cm1 = and i64 %cm, %sm1
  %ck1 = and i64 %ck, %cm1
  %cd1 = and i64 %cd, %sdj
  %sj1 = add i64 %sj, 1
  br label %smerge
smdone:
  %single = icmp eq i64 %b, %a1
  br i1 %single, label %skeep, label %scheck
scheck:
  %sc = call i64 @conflict(ptr %tk, ptr %tm, ptr %tl, ptr %tr, i64 %n, i64 %full, i64 %p, i64 %r, i64 %ck, i64 %cm)
  %sclear = icmp slt i64 %sc, 0
  br i1 %sclear, label %skeep, label %shalve
skeep:
  %o = load i64, ptr %ov
  %pko = getelementptr inbounds i64, ptr %k, i64 %o
  store i64 %ck, ptr %pko
  %pmo = getelementptr inbounds i64, ptr %m, i64 %o
  store i64 %cm, ptr %pmo
  %pdo = getelementptr inbounds i64, ptr %d, i64 %o
  store i64 %cd, ptr %pdo
  %o1 = add i64 %o, 1
  store i64 %o1, ptr %ov
  br label %spop
shalve:
  ; the first index in [a, b) whose key is >= the last key with the bits below the highest
  ; differing one cleared
  %bl = sub i64 %b, 1
  %pkl = getelementptr inbounds i64, ptr %k, i64 %bl
  %kl = load i64, ptr %pkl
  %dx = xor i64 %ka, %kl
  %lz = call i64 @llvm.ctlz.i64(i64 %dx, i1 true)
  %bit = sub i64 63, %lz
  %t0 = lshr i64 %kl, %bit
  %thr = shl i64 %t0, %bit
  br label %hsearch
hsearch:
  %hlo = phi i64 [%a, %shalve], [%hlo2, %hstep]
  %hhi = phi i64 [%b, %shalve], [%hhi2, %hstep]
  %hmore = icmp ult i64 %hlo, %hhi
  br i1 %hmore, label %hstep, label %hfound
hstep:
  %hspan = sub i64 %hhi, %hlo
  %hh = lshr i64 %hspan, 1
  %hmid = add i64 %hlo, %hh
  %phm = getelementptr inbounds i64, ptr %k, i64 %hmid
  %khm = load i64, ptr %phm
  %hlt = icmp ult i64 %khm, %thr
  %hmid1 = add i64 %hmid, 1
  %hlo2 = select i1 %hlt, i64 %hmid1, i64 %hlo
  %hhi2 = select i1 %hlt, i64 %hhi, i64 %hmid
  br label %hsearch
hfound:
  ; push [half, b) then [a, half): the left half is done first
  %q0 = getelementptr inbounds i64, ptr %stack, i64 %spa
  store i64 %hlo, ptr %q0
  %q1 = getelementptr inbounds i64, ptr %stack, i64 %spb
  store i64 %b, ptr %q1
  %sp2 = add i64 %spa, 2
  %q2 = getelementptr inbounds i64, ptr %stack, i64 %sp2
  store i64 %a, ptr %q2
  %sp3 = add i64 %spa, 3
  %q3 = getelementptr inbounds i64, ptr %stack, i64 %sp3
  store i64 %hlo, ptr %q3
  %sp4 = add i64 %spa, 4
  store i64 %sp4, ptr %spv
  br label %spop
sdone:
  %olen = load i64, ptr %ov
  store i64 %olen, ptr %lenv
  br label %pairs

; ---- greedy pairs
pairs:
  store i64 0, ptr %hb
  store i64 0, ptr %iv
  br label %iloop
iloop:
  %i = load i64, ptr %iv
  %len = load i64, ptr %lenv
  %i1 = add i64 %i, 1
  %imore = icmp ult i64 %i1, %len
  br i1 %imore, label %ibody, label %gend
ibody:
  %pki = getelementptr inbounds i64, ptr %k, i64 %i
  %ki = load i64, ptr %pki
  store i64 %ki, ptr %k1v
  %pmi = getelementptr inbounds i64, ptr %m, i64 %i
  %mi = load i64, ptr %pmi
  store i64 %mi, ptr %m1v
  store i64 %i1, ptr %jv
  br label %jloop
jloop:
  %j = load i64, ptr %jv
  %jlen = load i64, ptr %lenv
  %jmore = icmp ult i64 %j, %jlen
  br i1 %jmore, label %jbody, label %inext
jbody:
  %k1 = load i64, ptr %k1v
  %m1 = load i64, ptr %m1v
  %pkj = getelementptr inbounds i64, ptr %k, i64 %j
  %kj = load i64, ptr %pkj
  %pmj = getelementptr inbounds i64, ptr %m, i64 %j
  %mj = load i64, ptr %pmj
  %x = xor i64 %k1, %kj
  %nx = xor i64 %x, -1
  %mm0 = and i64 %m1, %mj
  %mm = and i64 %mm0, %nx
  %mk = and i64 %k1, %mm
  %have = load i64, ptr %hb
  %hasb = icmp ne i64 %have, 0
  br i1 %hasb, label %tryb, label %scan
tryb:
  %bk = load i64, ptr %bkv
  %bm = load i64, ptr %bmv
  %ba = and i64 %bk, %mm
  %bb = and i64 %bm, %mk
  %bmeet = icmp eq i64 %ba, %bb
  br i1 %bmeet, label %jskip, label %scan
scan:
  %c = call i64 @conflict(ptr %tk, ptr %tm, ptr %tl, ptr %tr, i64 %n, i64 %full, i64 %p, i64 %r, i64 %mk, i64 %mm)
  %clear = icmp slt i64 %c, 0
  br i1 %clear, label %merge, label %refused
refused:
  %pck = getelementptr inbounds i64, ptr %tk, i64 %c
  %ckv = load i64, ptr %pck
  store i64 %ckv, ptr %bkv
  %pcm = getelementptr inbounds i64, ptr %tm, i64 %c
  %cmv = load i64, ptr %pcm
  store i64 %cmv, ptr %bmv
  store i64 1, ptr %hb
  br label %jskip
jskip:
  %j1 = add i64 %j, 1
  store i64 %j1, ptr %jv
  br label %jloop
merge:
  store i64 %mk, ptr %pki
  store i64 %mm, ptr %pmi
  store i64 %mk, ptr %k1v
  store i64 %mm, ptr %m1v
  %pdi = getelementptr inbounds i64, ptr %d, i64 %i
  %di = load i64, ptr %pdi
  %pdj = getelementptr inbounds i64, ptr %d, i64 %j
  %dj = load i64, ptr %pdj
  %dij = and i64 %di, %dj
  store i64 %dij, ptr %pdi
  %last = sub i64 %jlen, 1
  %pkl2 = getelementptr inbounds i64, ptr %k, i64 %last
  %klast = load i64, ptr %pkl2
  store i64 %klast, ptr %pkj
  %pml2 = getelementptr inbounds i64, ptr %m, i64 %last
  %mlast = load i64, ptr %pml2
  store i64 %mlast, ptr %pmj
  %pdl2 = getelementptr inbounds i64, ptr %d, i64 %last
  %dlast = load i64, ptr %pdl2
  store i64 %dlast, ptr %pdj
  store i64 %last, ptr %lenv
  br label %jloop
inext:
  store i64 %i1, ptr %iv
  br label %iloop
gend:
  %plen = getelementptr inbounds i64, ptr %lens, i64 %p
  %flen = load i64, ptr %lenv
  store i64 %flen, ptr %plen
  ; move the group's merged entries down to the end of the previous group's (%sv: their count)
  %out = load i64, ptr %sv
  br label %copy
copy:
  %ct = phi i64 [0, %gend], [%ct1, %copystep]
  %cmore2 = icmp ult i64 %ct, %flen
  br i1 %cmore2, label %copystep, label %copied
copystep:
  %ctk = getelementptr inbounds i64, ptr %k, i64 %ct
  %ctkv = load i64, ptr %ctk
  %cto = add i64 %out, %ct
  %cok = getelementptr inbounds i64, ptr %gk, i64 %cto
  store i64 %ctkv, ptr %cok
  %ctm = getelementptr inbounds i64, ptr %m, i64 %ct
  %ctmv = load i64, ptr %ctm
  %com = getelementptr inbounds i64, ptr %gm, i64 %cto
  store i64 %ctmv, ptr %com
  %ctd = getelementptr inbounds i64, ptr %d, i64 %ct
  %ctdv = load i64, ptr %ctd
  %cod = getelementptr inbounds i64, ptr %gd, i64 %cto
  store i64 %ctdv, ptr %cod
  %ct1 = add i64 %ct, 1
  br label %copy
copied:
  %out1 = add i64 %out, %flen
  store i64 %out1, ptr %sv
  store i64 %p1, ptr %pv
  br label %group
exit:
  %total = load i64, ptr %sv
  ret i64 %total
}

declare i64 @llvm.ctlz.i64(i64, i1)

; ORTC on disjoint prefixes sorted by key: see compress._ortc (the reference).  Buffer:
;   key[n] rid[n] flag[n]  node arrays of 2n: base none depth left right lo, routes[2n*w]
;   stack[n] gap[n] todo[8n] placed[6n] (out: depth, leaf index, route id) owner[n] (out)
; returns the number of placed entries
define i64 @nmc_mc_ortc(ptr noalias %buf, i64 %n, i64 %w, i64 %width) {
entry:
  %nnv = alloca i64
  %spv = alloca i64
  %iv = alloca i64
  %nodev = alloca i64
  %tpv = alloca i64
  %npv = alloca i64
  %n2 = shl i64 %n, 1
  %rid = getelementptr inbounds i64, ptr %buf, i64 %n
  %flag = getelementptr inbounds i64, ptr %rid, i64 %n
  %base = getelementptr inbounds i64, ptr %flag, i64 %n
  %none = getelementptr inbounds i64, ptr %base, i64 %n2
  %depth = getelementptr inbounds i64, ptr %none, i64 %n2
  %left = getelementptr inbounds i64, ptr %depth, i64 %n2
  %right = getelementptr inbounds i64, ptr %left, i64 %n2
  %lo = getelementptr inbounds i64, ptr %right, i64 %n2
  %routes = getelementptr inbounds i64, ptr %lo, i64 %n2
  %nw = mul i64 %n2, %w
  %stack = getelementptr inbounds i64, ptr %routes, i64 %nw
  %gaps = getelementptr inbounds i64, ptr %stack, i64 %n
  %todo = getelementptr inbounds i64, ptr %gaps, i64 %n
  %n8 = shl i64 %n, 3
  %placed = getelementptr inbounds i64, ptr %todo, i64 %n8
  %n6 = mul i64 %n, 6
  %owner = getelementptr inbounds i64, ptr %placed, i64 %n6
  store i64 0, ptr %nnv
  store i64 0, ptr %spv
  store i64 0, ptr %iv
  br label %leaf
leaf:
  %i = load i64, ptr %iv
  %imore = icmp ult i64 %i, %n
  br i1 %imore, label %leafbody, label %down
leafbody:
  %leafnode = load i64, ptr %nnv
  %nn1 = add i64 %leafnode, 1
  store i64 %nn1, ptr %nnv
  %pb = getelementptr inbounds i64, ptr %base, i64 %leafnode
  store i64 0, ptr %pb
  %pfi = getelementptr inbounds i64, ptr %flag, i64 %i
  %fi = load i64, ptr %pfi
  %isdef = icmp ne i64 %fi, 0
  %nonev = select i1 %isdef, i64 0, i64 1
  %pn = getelementptr inbounds i64, ptr %none, i64 %leafnode
  store i64 %nonev, ptr %pn
  %pd = getelementptr inbounds i64, ptr %depth, i64 %leafnode
  store i64 -1, ptr %pd
  %pl = getelementptr inbounds i64, ptr %lo, i64 %leafnode
  store i64 %i, ptr %pl
  %pri = getelementptr inbounds i64, ptr %rid, i64 %i
  %ri = load i64, ptr %pri
  %rword = lshr i64 %ri, 6
  %rbit = and i64 %ri, 63
  %rmask = shl i64 1, %rbit
  %rbase = mul i64 %leafnode, %w
  br label %clear
clear:
  %cw = phi i64 [0, %leafbody], [%cw1, %clearstep]
  %cmore = icmp ult i64 %cw, %w
  br i1 %cmore, label %clearstep, label %cleared
clearstep:
  %isw = icmp eq i64 %cw, %rword
  %cv = select i1 %isw, i64 %rmask, i64 0
  %cidx = add i64 %rbase, %cw
  %pc = getelementptr inbounds i64, ptr %routes, i64 %cidx
  store i64 %cv, ptr %pc
  %cw1 = add i64 %cw, 1
  br label %clear
cleared:
  ; the gap to the next key: width - bit length of their xor (-1 after the last)
  %i1 = add i64 %i, 1
  %last = icmp eq i64 %i1, %n
  br i1 %last, label %gapdone, label %gapnext
gapnext:
  %pki = getelementptr inbounds i64, ptr %buf, i64 %i
  %ki = load i64, ptr %pki
  %pkn = getelementptr inbounds i64, ptr %buf, i64 %i1
  %kn = load i64, ptr %pkn
  %kx = xor i64 %ki, %kn
  %lz = call i64 @llvm.ctlz.i64(i64 %kx, i1 false)
  %bl = sub i64 64, %lz
  %g = sub i64 %width, %bl
  br label %gapdone
gapdone:
  %gap = phi i64 [-1, %cleared], [%g, %gapnext]
  store i64 %leafnode, ptr %nodev
  br label %fold
fold:
  %sp = load i64, ptr %spv
  %hasst = icmp sgt i64 %sp, 0
  br i1 %hasst, label %foldtest, label %push
foldtest:
  %sp1 = sub i64 %sp, 1
  %pgt = getelementptr inbounds i64, ptr %gaps, i64 %sp1
  %gt = load i64, ptr %pgt
  %deeper = icmp sgt i64 %gt, %gap
  br i1 %deeper, label %foldbody, label %push
foldbody:
  store i64 %sp1, ptr %spv
  %pst = getelementptr inbounds i64, ptr %stack, i64 %sp1
  %a = load i64, ptr %pst
  %b = load i64, ptr %nodev
  %new = load i64, ptr %nnv
  %new1 = add i64 %new, 1
  store i64 %new1, ptr %nnv
  %abase = mul i64 %a, %w
  %bbase = mul i64 %b, %w
  %nbase = mul i64 %new, %w
  br label %both
both:
  %bw = phi i64 [0, %foldbody], [%bw1, %bothstep]
  %bany = phi i64 [0, %foldbody], [%bany1, %bothstep]
  %bmore = icmp ult i64 %bw, %w
  br i1 %bmore, label %bothstep, label %bothdone
bothstep:
  %ai = add i64 %abase, %bw
  %pa = getelementptr inbounds i64, ptr %routes, i64 %ai
  %ra = load i64, ptr %pa
  %bi = add i64 %bbase, %bw
  %pbb = getelementptr inbounds i64, ptr %routes, i64 %bi
  %rb = load i64, ptr %pbb
  %rab = and i64 %ra, %rb
  %bany1 = or i64 %bany, %rab
  %bw1 = add i64 %bw, 1
  br label %both
bothdone:
  %hasboth = icmp ne i64 %bany, 0
  br label %set
set:
  %sw = phi i64 [0, %bothdone], [%sw1, %setstep]
  %smore = icmp ult i64 %sw, %w
  br i1 %smore, label %setstep, label %setdone
setstep:
  %sai = add i64 %abase, %sw
  %psa = getelementptr inbounds i64, ptr %routes, i64 %sai
  %sra = load i64, ptr %psa
  %sbi = add i64 %bbase, %sw
  %psb = getelementptr inbounds i64, ptr %routes, i64 %sbi
  %srb = load i64, ptr %psb
  %sand = and i64 %sra, %srb
  %sor = or i64 %sra, %srb
  %sv = select i1 %hasboth, i64 %sand, i64 %sor
  %sni = add i64 %nbase, %sw
  %psn = getelementptr inbounds i64, ptr %routes, i64 %sni
  store i64 %sv, ptr %psn
  %sw1 = add i64 %sw, 1
  br label %set
setdone:
  %pba = getelementptr inbounds i64, ptr %base, i64 %a
  %basea = load i64, ptr %pba
  %pbb2 = getelementptr inbounds i64, ptr %base, i64 %b
  %baseb = load i64, ptr %pbb2
  %bsum = add i64 %basea, %baseb
  %extra = select i1 %hasboth, i64 0, i64 1
  %nb = add i64 %bsum, %extra
  %pnb = getelementptr inbounds i64, ptr %base, i64 %new
  store i64 %nb, ptr %pnb
  %pna = getelementptr inbounds i64, ptr %none, i64 %a
  %nonea = load i64, ptr %pna
  %pnb2 = getelementptr inbounds i64, ptr %none, i64 %b
  %noneb = load i64, ptr %pnb2
  %nsum = add i64 %nonea, %noneb
  %nb1 = add i64 %nb, 1
  %nlt = icmp slt i64 %nsum, %nb1
  %nmin = select i1 %nlt, i64 %nsum, i64 %nb1
  %pnn = getelementptr inbounds i64, ptr %none, i64 %new
  store i64 %nmin, ptr %pnn
  %pdn = getelementptr inbounds i64, ptr %depth, i64 %new
  store i64 %gt, ptr %pdn
  %pln = getelementptr inbounds i64, ptr %left, i64 %new
  store i64 %a, ptr %pln
  %prn = getelementptr inbounds i64, ptr %right, i64 %new
  store i64 %b, ptr %prn
  %pla = getelementptr inbounds i64, ptr %lo, i64 %a
  %loa = load i64, ptr %pla
  %plon = getelementptr inbounds i64, ptr %lo, i64 %new
  store i64 %loa, ptr %plon
  store i64 %new, ptr %nodev
  br label %fold
push:
  %psp = load i64, ptr %spv
  %node = load i64, ptr %nodev
  %pps = getelementptr inbounds i64, ptr %stack, i64 %psp
  store i64 %node, ptr %pps
  %ppg = getelementptr inbounds i64, ptr %gaps, i64 %psp
  store i64 %gap, ptr %ppg
  %psp1 = add i64 %psp, 1
  store i64 %psp1, ptr %spv
  store i64 %i1, ptr %iv
  br label %leaf

; ---- top down: (node, inherited route or -1, depth, current placed entry or -1)
down:
  %root = load i64, ptr %stack
  store i64 %root, ptr %todo
  %t1p = getelementptr inbounds i64, ptr %todo, i64 1
  store i64 -1, ptr %t1p
  %t2p = getelementptr inbounds i64, ptr %todo, i64 2
  store i64 0, ptr %t2p
  %t3p = getelementptr inbounds i64, ptr %todo, i64 3
  store i64 -1, ptr %t3p
  store i64 4, ptr %tpv
  store i64 0, ptr %npv
  br label %pop
pop:
  %tp = load i64, ptr %tpv
  %tempty = icmp eq i64 %tp, 0
  br i1 %tempty, label %finish, label %popbody
popbody:
  %tp4 = sub i64 %tp, 4
  store i64 %tp4, ptr %tpv
  %q0 = getelementptr inbounds i64, ptr %todo, i64 %tp4
  %dnode = load i64, ptr %q0
  %q1 = getelementptr inbounds i64, ptr %q0, i64 1
  %inh = load i64, ptr %q1
  %q2 = getelementptr inbounds i64, ptr %q0, i64 2
  %top = load i64, ptr %q2
  %q3 = getelementptr inbounds i64, ptr %q0, i64 3
  %cur = load i64, ptr %q3
  %pdd = getelementptr inbounds i64, ptr %depth, i64 %dnode
  %dd = load i64, ptr %pdd
  %pdl = getelementptr inbounds i64, ptr %lo, i64 %dnode
  %dlo = load i64, ptr %pdl
  %isleaf = icmp slt i64 %dd, 0
  br i1 %isleaf, label %dleaf, label %dinner
dleaf:
  %plr = getelementptr inbounds i64, ptr %rid, i64 %dlo
  %lr = load i64, ptr %plr
  %plf = getelementptr inbounds i64, ptr %flag, i64 %dlo
  %lf = load i64, ptr %plf
  %same = icmp eq i64 %inh, %lr
  %inone = icmp eq i64 %inh, -1
  %lfd = icmp ne i64 %lf, 0
  %okdef = and i1 %inone, %lfd
  %fine = or i1 %same, %okdef
  br i1 %fine, label %lown, label %lplace
lplace:
  %lnp = load i64, ptr %npv
  %lpi = mul i64 %lnp, 3
  %lp0 = getelementptr inbounds i64, ptr %placed, i64 %lpi
  store i64 %top, ptr %lp0
  %lp1 = getelementptr inbounds i64, ptr %lp0, i64 1
  store i64 %dlo, ptr %lp1
  %lp2 = getelementptr inbounds i64, ptr %lp0, i64 2
  store i64 %lr, ptr %lp2
  %lnp1 = add i64 %lnp, 1
  store i64 %lnp1, ptr %npv
  br label %lown
lown:
  %lcur = phi i64 [%cur, %dleaf], [%lnp, %lplace]
  %pow = getelementptr inbounds i64, ptr %owner, i64 %dlo
  store i64 %lcur, ptr %pow
  br label %pop
dinner:
  %pal = getelementptr inbounds i64, ptr %left, i64 %dnode
  %da = load i64, ptr %pal
  %pbr = getelementptr inbounds i64, ptr %right, i64 %dnode
  %db = load i64, ptr %pbr
  %noinh = icmp eq i64 %inh, -1
  br i1 %noinh, label %staynone, label %stayroute
staynone:
  %pna2 = getelementptr inbounds i64, ptr %none, i64 %da
  %na2 = load i64, ptr %pna2
  %pnb3 = getelementptr inbounds i64, ptr %none, i64 %db
  %nb3 = load i64, ptr %pnb3
  %st1 = add i64 %na2, %nb3
  br label %decide
stayroute:
  %pba2 = getelementptr inbounds i64, ptr %base, i64 %da
  %ba2 = load i64, ptr %pba2
  %pbb3 = getelementptr inbounds i64, ptr %base, i64 %db
  %bb3 = load i64, ptr %pbb3
  %iword = lshr i64 %inh, 6
  %ibit = and i64 %inh, 63
  %awi = mul i64 %da, %w
  %awi2 = add i64 %awi, %iword
  %paw = getelementptr inbounds i64, ptr %routes, i64 %awi2
  %aw = load i64, ptr %paw
  %bwi = mul i64 %db, %w
  %bwi2 = add i64 %bwi, %iword
  %pbw = getelementptr inbounds i64, ptr %routes, i64 %bwi2
  %bww = load i64, ptr %pbw
  %ash = lshr i64 %aw, %ibit
  %ahas = and i64 %ash, 1
  %bsh = lshr i64 %bww, %ibit
  %bhas = and i64 %bsh, 1
  %amiss = xor i64 %ahas, 1
  %bmiss = xor i64 %bhas, 1
  %s0 = add i64 %ba2, %bb3
  %s1 = add i64 %s0, %amiss
  %st2 = add i64 %s1, %bmiss
  br label %decide
decide:
  %stay = phi i64 [%st1, %staynone], [%st2, %stayroute]
  %pbn = getelementptr inbounds i64, ptr %base, i64 %dnode
  %bn = load i64, ptr %pbn
  %bn1 = add i64 %bn, 1
  %better = icmp slt i64 %bn1, %stay
  br i1 %better, label %lowest, label %children
lowest:
  %lwb = mul i64 %dnode, %w
  br label %scanw
scanw:
  %lw = phi i64 [0, %lowest], [%lw1, %scanstep]
  %lwi = add i64 %lwb, %lw
  %plw = getelementptr inbounds i64, ptr %routes, i64 %lwi
  %lwv = load i64, ptr %plw
  %lwz = icmp eq i64 %lwv, 0
  br i1 %lwz, label %scanstep, label %scanfound
scanstep:
  %lw1 = add i64 %lw, 1
  br label %scanw
scanfound:
  %tz = call i64 @llvm.cttz.i64(i64 %lwv, i1 true)
  %lw64 = shl i64 %lw, 6
  %newinh = add i64 %lw64, %tz
  %inp = load i64, ptr %npv
  %ipi = mul i64 %inp, 3
  %ip0 = getelementptr inbounds i64, ptr %placed, i64 %ipi
  store i64 %top, ptr %ip0
  %ip1 = getelementptr inbounds i64, ptr %ip0, i64 1
  store i64 %dlo, ptr %ip1
  %ip2 = getelementptr inbounds i64, ptr %ip0, i64 2
  store i64 %newinh, ptr %ip2
  %inp1 = add i64 %inp, 1
  store i64 %inp1, ptr %npv
  br label %children
children:
  %cinh = phi i64 [%inh, %decide], [%newinh, %scanfound]
  %ccur = phi i64 [%cur, %decide], [%inp, %scanfound]
  %cdepth = add i64 %dd, 1
  %ctp = load i64, ptr %tpv
  %c0 = getelementptr inbounds i64, ptr %todo, i64 %ctp
  store i64 %db, ptr %c0
  %c1 = getelementptr inbounds i64, ptr %c0, i64 1
  store i64 %cinh, ptr %c1
  %c2 = getelementptr inbounds i64, ptr %c0, i64 2
  store i64 %cdepth, ptr %c2
  %c3 = getelementptr inbounds i64, ptr %c0, i64 3
  store i64 %ccur, ptr %c3
  %c4 = getelementptr inbounds i64, ptr %c0, i64 4
  store i64 %da, ptr %c4
  %c5 = getelementptr inbounds i64, ptr %c0, i64 5
  store i64 %cinh, ptr %c5
  %c6 = getelementptr inbounds i64, ptr %c0, i64 6
  store i64 %cdepth, ptr %c6
  %c7 = getelementptr inbounds i64, ptr %c0, i64 7
  store i64 %ccur, ptr %c7
  %ctp8 = add i64 %ctp, 8
  store i64 %ctp8, ptr %tpv
  br label %pop
finish:
  %count = load i64, ptr %npv
  ret i64 %count
}

declare i64 @llvm.cttz.i64(i64, i1)
"""

_STATE: dict = {}


def kernel():
    """The route groups' kernel as a ctypes function, the others in ``_STATE`` (all compiled or
    loaded from the cache once per process; ``_STATE["seconds"]``: what that took)."""
    fn = _STATE.get("fn")
    if fn is None:
        import time

        from nmc.targets.cpu.jit import compile_module

        start = time.perf_counter()
        compiled = compile_module(IR, FUNCTION)
        oc = _STATE["oc_compiled"] = compile_module(_oc_module(), "nmc_mc_ordered_covering")
        proto = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                 ctypes.c_uint64, ctypes.c_int64, ctypes.c_int64)
        fn = _STATE["fn"] = proto(compiled.address)
        _STATE["ortc"] = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64)(compiled.engine.get_function_address("nmc_mc_ortc"))
        _STATE["oc"] = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_int64)(oc.address)
        _STATE["compiled"] = compiled  # keeps the engine (and the code) alive
        fused = _STATE["fused_compiled"] = compile_module(_fused_module(), "nmc_mc_compress_batch")
        _STATE["fused"] = ctypes.CFUNCTYPE(ctypes.c_int64, *[ctypes.c_void_p] * 5, *[ctypes.c_int64] * 4,
                                           *[ctypes.c_void_p] * 3)(fused.address)
        addresses = (ctypes.c_uint64 * 3)(compiled.address, compiled.engine.get_function_address("nmc_mc_ortc"),
                                          oc.address)
        _STATE["kernels"] = addresses
        _STATE["kernels_at"] = ctypes.addressof(addresses)
        _STATE["seconds"] = time.perf_counter() - start
    return fn


def prepare() -> tuple[float, bool]:
    """Compile the kernels now (or load them from nmc's object cache): the seconds it took
    (0 when this process already has them) and whether they came from the cache."""
    had = "fn" in _STATE
    kernel()
    if had:
        return 0.0, True
    return _STATE["seconds"], all(_STATE[k].from_cache for k in ("compiled", "oc_compiled", "fused_compiled"))


def merge_groups(sk, sm, sd, sr, group_of, group_rids, width: int, split: bool, defaults_as_members: bool):
    """The merged entries of every route group: the table (disjoint prefixes sorted by key) is
    keys ``sk``, masks ``sm``, defaultable flags ``sd`` and route ids ``sr``; ``group_of[r]``
    is route id ``r``'s group, ``group_rids[p]`` group ``p``'s route id.  A group's members
    are its route's entries (not the defaultable ones unless ``defaults_as_members``: those
    are conflicts of every group); an entry of a group is a conflict of the groups before it.
    Returns the merged entries' keys, masks and defaultable flags (group 0's first, then
    group 1's, ...) and each group's count: the same contract as ``compress._merge_groups``
    (the reference)."""
    n, n_groups, n_routes = len(sk), len(group_rids), len(group_of)
    buf = array("Q", bytes(8 * (n_routes + 3 * n_groups + 1 + 8 * n)))
    buf[:n_routes] = array("Q", group_of)
    buf[n_routes:n_routes + n_groups] = array("Q", group_rids)
    table = n_routes + 3 * n_groups + 1 + 3 * n
    buf[table:table + n] = array("Q", sk)
    buf[table + n:table + 2 * n] = array("Q", sm)
    buf[table + 3 * n:table + 4 * n] = array("Q", sr)
    buf[table + 4 * n:] = array("Q", sd)
    total = kernel()(buf.buffer_info()[0], n_groups, n_routes, n, (1 << width) - 1, split, defaults_as_members)
    at = n_routes + 2 * n_groups + 1
    lengths = buf[at:at + n_groups].tolist()
    at += n_groups
    return (buf[at:at + total].tolist(), buf[at + n:at + n + total].tolist(), buf[at + 2 * n:at + 2 * n + total].tolist(),
            lengths)


def ortc_place(keys, rids, flags, n_routes: int, width: int):
    """ORTC's placed entries on disjoint prefixes sorted by key (``keys``, route ids ``rids``,
    defaultable ``flags``): the same contract as ``compress._ortc_place`` (the reference)."""
    n = len(keys)
    w = (n_routes + 63) // 64
    size = 3 * n + 12 * n + 2 * n * w + 2 * n + 8 * n + 6 * n + n
    buf = array("q", bytes(8 * size))
    memoryview(buf).cast("B").cast("Q")[:n] = array("Q", keys)
    buf[n:2 * n] = array("q", rids)
    buf[2 * n:3 * n] = array("q", flags)
    kernel()
    count = _STATE["ortc"](buf.buffer_info()[0], n, w, width)
    at = size - n - 6 * n
    placed = buf[at:at + 3 * count].tolist()
    return placed[0::3], placed[1::3], placed[2::3], buf[size - n:].tolist()


# ---- Ordered Covering as rig has it, on disjoint prefixes (compress._ordered_covering with
# strict=True, defaults_as_members=True: the reference), built with llvmlite's IR builder

_I64 = ir.IntType(64)
_I1 = ir.IntType(1)


class _Emitter:
    """A little structured-code layer over ``ir.IRBuilder``: variables are stack slots (LLVM's
    mem2reg makes them registers), loops are context managers."""

    def __init__(self, builder: ir.IRBuilder):
        self.b = builder
        self.ctpop = None

    def c(self, value: int):
        return ir.Constant(_I64, value)

    def var(self, init):
        with self.b.goto_entry_block():
            slot = self.b.alloca(_I64)
        self.b.store(init if isinstance(init, ir.Value) else self.c(init), slot)
        return slot

    def get(self, slot):
        return self.b.load(slot, typ=_I64)

    def set(self, slot, value):
        self.b.store(value if isinstance(value, ir.Value) else self.c(value), slot)

    def at(self, array, index):
        return self.b.gep(array, [index if isinstance(index, ir.Value) else self.c(index)], source_etype=_I64,
                          inbounds=True)

    def ld(self, array, index):
        return self.b.load(self.at(array, index), typ=_I64)

    def st(self, array, index, value):
        self.b.store(value if isinstance(value, ir.Value) else self.c(value), self.at(array, index))

    def insert(self, array, lo, at, item, keys):
        """One step of an insertion sort: ``array[lo:at]`` is sorted by ``keys[...]``
        (unsigned); ``item`` goes in after every element whose key is not greater (stable),
        the greater ones shifting up by one (to ``array[at]``)."""
        b = self.b
        pos = self.var(at)
        key = self.ld(keys, item)
        with self.forever() as (_, placed):
            p = self.get(pos)
            with b.if_then(b.icmp_signed("<=", p, lo)):
                b.branch(placed)
            prev = self.ld(array, b.sub(p, self.c(1)))
            with b.if_then(b.icmp_unsigned("<=", self.ld(keys, prev), key)):
                b.branch(placed)
            self.st(array, p, prev)
            self.set(pos, b.sub(p, self.c(1)))
        self.st(array, self.get(pos), item)

    def popcount(self, x):
        return self.b.call(self.ctpop, [x])

    def meets(self, k1, m1, k2, m2):
        b = self.b
        return b.icmp_unsigned("==", b.and_(k1, m2), b.and_(k2, m1))

    @contextmanager
    def loop(self, start, stop):
        """``for i in range(start, stop)`` (``stop`` a callable: evaluated each time); yields
        ``(i, next block, end block)``: branch to them to continue or break."""
        b = self.b
        slot = self.var(start)
        head, body, step, end = (b.append_basic_block() for _ in range(4))
        b.branch(head)
        b.position_at_end(head)
        i = self.get(slot)
        limit = stop() if callable(stop) else stop
        b.cbranch(b.icmp_signed("<", i, limit if isinstance(limit, ir.Value) else self.c(limit)), body, end)
        b.position_at_end(body)
        yield i, step, end
        if b.block.terminator is None:
            b.branch(step)
        b.position_at_end(step)
        self.set(slot, b.add(self.get(slot), self.c(1)))
        b.branch(head)
        b.position_at_end(end)

    @contextmanager
    def forever(self):
        """``while True``; yields ``(next block, end block)``."""
        b = self.b
        head, end = b.append_basic_block(), b.append_basic_block()
        b.branch(head)
        b.position_at_end(head)
        yield head, end
        if b.block.terminator is None:
            b.branch(head)
        b.position_at_end(end)


def _oc_module() -> str:
    """The IR of ``nmc_mc_ordered_covering(buf, n, width, target, routes)``: see
    :func:`ordered_covering` for the buffer."""
    module = ir.Module(name="ordered_covering")
    fn = ir.Function(module, ir.FunctionType(_I64, [ir.PointerType(), _I64, _I64, _I64, _I64]),
                     name="nmc_mc_ordered_covering")
    buf, n, width, target, n_routes = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    e = _Emitter(b)
    e.ctpop = ir.Function(module, ir.FunctionType(_I64, [_I64]), name="llvm.ctpop.i64")
    ctlz = ir.Function(module, ir.FunctionType(_I64, [_I64, _I1]), name="llvm.ctlz.i64")
    c = e.c
    n2 = b.add(n, n)
    arrays = {}
    at = c(0)
    for name, size in (("key", n2), ("mask", n2), ("rid", n2), ("gen", n2), ("order", n2), ("live", n2),
                       ("aowner", n), ("adef", n), ("cvalid", n_routes), ("cgood", n_routes), ("cck", n_routes),
                       ("ccm", n_routes), ("ids", n2), ("keep", n2), ("alist", n), ("elist", n2), ("fgen", n2),
                       ("rmin", n_routes), ("rsize", n_routes), ("ckeep", b.mul(n_routes, n)), ("out", n2)):
        arrays[name] = e.at(buf, at)
        at = b.add(at, size)
    key, mask, rid, gen, order, live = (arrays[k] for k in ("key", "mask", "rid", "gen", "order", "live"))
    aowner, adef, cvalid, cgood, cck, ccm = (arrays[k] for k in ("aowner", "adef", "cvalid", "cgood", "cck", "ccm"))
    ids, keep, alist, elist, fgen = (arrays[k] for k in ("ids", "keep", "alist", "elist", "fgen"))
    rmin, rsize, out, ckeep = arrays["rmin"], arrays["rsize"], arrays["out"], arrays["ckeep"]
    seq = 1 << 31
    count = e.var(n)  # entries made so far
    n_live = e.var(n)
    merges = e.var(0)

    def gen_of(m):
        return b.sub(width, e.popcount(m))

    def merge_of(lst, size):
        """(key, mask) of the merge of entries lst[0:size]."""
        all_ones, any_ones, all_masks = e.var(-1), e.var(0), e.var(-1)
        with e.loop(0, size) as (i, _, _):
            x = e.ld(lst, i)
            k = e.ld(key, x)
            e.set(all_ones, b.and_(e.get(all_ones), k))
            e.set(any_ones, b.or_(e.get(any_ones), k))
            e.set(all_masks, b.and_(e.get(all_masks), e.ld(mask, x)))
        ones = e.get(all_ones)
        m = b.and_(e.get(all_masks), b.not_(b.xor(ones, e.get(any_ones))))
        return b.and_(ones, m), m

    with e.loop(0, n) as (i, _, _):
        e.st(gen, i, gen_of(e.ld(mask, i)))
        e.st(order, i, b.or_(b.shl(e.ld(gen, i), c(32)), b.add(c(seq), i)))
        e.st(live, i, 1)
        e.st(aowner, i, i)
    with e.loop(0, n_routes) as (r, _, _):
        e.st(cvalid, r, 0)

    def downcheck(members, size_slot, n_alias):
        """Remove members (lst ``members``, count in ``size_slot``) until the merge covers no
        alias below it; on failure the count becomes 0."""
        with e.forever() as (_, done):
            size = e.get(size_slot)
            with b.if_then(b.icmp_signed("<", size, c(2))):
                e.set(size_slot, 0)
                b.branch(done)
            mk, mm = merge_of(members, size)
            below = b.shl(gen_of(mm), c(32))
            least, to_one, to_zero, any_covered = e.var(65), e.var(0), e.var(0), e.var(0)
            with e.loop(0, n_alias) as (t, nxt, _):
                j = e.ld(alist, t)
                ak, am = e.ld(key, j), e.ld(mask, j)
                owner_order = e.ld(order, e.ld(aowner, j))
                covered = b.and_(b.icmp_signed(">=", owner_order, below), e.meets(ak, am, mk, mm))
                with b.if_then(b.not_(covered)):
                    b.branch(nxt)
                e.set(any_covered, 1)
                s = b.and_(am, b.not_(mm))
                pc = e.popcount(s)
                with b.if_then(b.icmp_signed("<", pc, e.get(least))):
                    e.set(least, pc)
                    e.set(to_one, 0)
                    e.set(to_zero, 0)
                with b.if_then(b.icmp_signed("==", pc, e.get(least))):
                    e.set(to_one, b.or_(e.get(to_one), b.and_(s, b.not_(ak))))
                    e.set(to_zero, b.or_(e.get(to_zero), b.and_(s, ak)))
            with b.if_then(b.icmp_signed("==", e.get(any_covered), c(0))):
                b.branch(done)
            with b.if_then(b.icmp_signed("==", e.get(least), c(0))):
                e.set(size_slot, 0)
                b.branch(done)
            # the bit and value removing fewest members, highest bit first, 1 before 0
            best_bit, best_want, best_count = e.var(0), e.var(0), e.var(-1)
            bits = e.var(b.or_(e.get(to_one), e.get(to_zero)))
            with e.forever() as (_, bits_done):
                with b.if_then(b.icmp_signed("==", e.get(bits), c(0))):
                    b.branch(bits_done)
                lz = b.call(ctlz, [e.get(bits), ir.Constant(_I1, 0)])
                bit = b.shl(c(1), b.sub(c(63), lz))
                e.set(bits, b.xor(e.get(bits), bit))
                for wanted_slot, want in ((to_one, bit), (to_zero, c(0))):
                    with b.if_then(b.icmp_unsigned("!=", b.and_(e.get(wanted_slot), bit), c(0))):
                        removed = e.var(0)
                        with e.loop(0, size) as (t, _, _):
                            x = e.ld(members, t)
                            gone = b.or_(b.icmp_unsigned("==", b.and_(e.ld(mask, x), bit), c(0)),
                                         b.icmp_unsigned("!=", b.and_(e.ld(key, x), bit), want))
                            e.set(removed, b.add(e.get(removed), b.zext(gone, _I64)))
                        better = b.or_(b.icmp_signed("<", e.get(best_count), c(0)),
                                       b.icmp_signed("<", e.get(removed), e.get(best_count)))
                        with b.if_then(better):
                            e.set(best_count, e.get(removed))
                            e.set(best_bit, bit)
                            e.set(best_want, want)
            # keep the others, in order
            kept = e.var(0)
            bit, want = e.get(best_bit), e.get(best_want)
            with e.loop(0, size) as (t, nxt, _):
                x = e.ld(members, t)
                gone = b.or_(b.icmp_unsigned("==", b.and_(e.ld(mask, x), bit), c(0)),
                             b.icmp_unsigned("!=", b.and_(e.ld(key, x), bit), want))
                with b.if_then(gone):
                    b.branch(nxt)
                e.st(members, e.get(kept), x)
                e.set(kept, b.add(e.get(kept), c(1)))
            e.set(size_slot, e.get(kept))

    def refine(r, keep_size):
        """Refine route ``r``'s merge into ``keep[0:keep_size]``; returns (candidate key, mask)."""
        size = e.var(0)
        with e.loop(0, lambda: e.get(count)) as (i, nxt, _):
            with b.if_then(b.or_(b.icmp_signed("==", e.ld(live, i), c(0)), b.icmp_signed("!=", e.ld(rid, i), r))):
                b.branch(nxt)
            e.insert(ids, c(0), e.get(size), i, order)  # by order (distinct, positive)
            e.set(size, b.add(e.get(size), c(1)))
        ck, cm = merge_of(ids, e.get(size))
        cgen = gen_of(cm)
        n_alias = e.var(0)
        with e.loop(0, n) as (j, nxt, _):
            with b.if_then(b.not_(e.meets(e.ld(key, j), e.ld(mask, j), ck, cm))):
                b.branch(nxt)
            e.st(alist, e.get(n_alias), j)
            e.set(n_alias, b.add(e.get(n_alias), c(1)))
        n_e = e.var(0)
        with e.loop(0, lambda: e.get(count)) as (x, nxt, _):
            bad = b.or_(b.icmp_signed("==", e.ld(live, x), c(0)), b.icmp_signed("==", e.ld(rid, x), r))
            bad = b.or_(bad, b.icmp_signed(">=", e.ld(gen, x), cgen))
            bad = b.or_(bad, b.not_(e.meets(e.ld(key, x), e.ld(mask, x), ck, cm)))
            with b.if_then(bad):
                b.branch(nxt)
            e.st(elist, e.get(n_e), x)
            e.set(n_e, b.add(e.get(n_e), c(1)))
        with e.loop(0, e.get(size)) as (t, _, _):
            e.st(keep, t, e.ld(ids, t))
        e.set(keep_size, e.get(size))
        downcheck(keep, keep_size, e.get(n_alias))
        with b.if_then(b.and_(b.icmp_signed(">", e.get(keep_size), c(0)), b.icmp_signed(">", e.get(n_e), c(0)))):
            # up-check: first generality of an entry between a member and the insertion point
            members = e.get(keep_size)
            with e.loop(0, members) as (t, _, _):
                i = e.ld(keep, t)
                first = e.var(1 << 40)
                with e.loop(0, e.get(n_e)) as (u, nxt, _):
                    x = e.ld(elist, u)
                    hit = b.and_(b.icmp_signed(">", e.ld(order, x), e.ld(order, i)),
                                 e.meets(e.ld(key, i), e.ld(mask, i), e.ld(key, x), e.ld(mask, x)))
                    hit = b.and_(hit, b.icmp_signed("<", e.ld(gen, x), e.get(first)))
                    with b.if_then(hit):
                        e.set(first, e.ld(gen, x))
                e.st(fgen, t, e.get(first))
            _, mm = merge_of(keep, members)
            g = e.var(gen_of(mm))
            changed = e.var(0)
            kept = e.var(members)
            t = e.var(b.sub(members, c(1)))
            with e.forever() as (_, up_done):
                with b.if_then(b.icmp_signed("<", e.get(t), c(0))):
                    b.branch(up_done)
                tt = e.get(t)
                e.set(t, b.sub(tt, c(1)))
                with b.if_then(b.icmp_signed("<", e.ld(fgen, tt), e.get(g))):
                    e.set(changed, 1)
                    # remove keep[tt] (members after it are already settled), keep the order
                    with e.loop(tt, b.sub(e.get(kept), c(1))) as (v, _, _):
                        e.st(keep, v, e.ld(keep, b.add(v, c(1))))
                        e.st(fgen, v, e.ld(fgen, b.add(v, c(1))))
                    e.set(kept, b.sub(e.get(kept), c(1)))
                    with b.if_then(b.icmp_signed("<", e.get(kept), c(2))):
                        e.set(kept, 0)
                        b.branch(up_done)
                    _, mm2 = merge_of(keep, e.get(kept))
                    e.set(g, gen_of(mm2))
            e.set(keep_size, e.get(kept))
            with b.if_then(b.and_(b.icmp_signed("!=", e.get(changed), c(0)),
                                  b.icmp_signed(">", e.get(keep_size), c(0)))):
                downcheck(keep, keep_size, e.get(n_alias))
        return ck, cm

    keep_size = e.var(0)
    with e.forever() as (_, finished):
        with b.if_then(b.icmp_signed("<=", e.get(n_live), target)):
            b.branch(finished)
        # routes: size and first entry
        with e.loop(0, n_routes) as (r, _, _):
            e.st(rsize, r, 0)
            e.st(rmin, r, (1 << 62))
        with e.loop(0, lambda: e.get(count)) as (i, nxt, _):
            with b.if_then(b.icmp_signed("==", e.ld(live, i), c(0))):
                b.branch(nxt)
            r = e.ld(rid, i)
            e.st(rsize, r, b.add(e.ld(rsize, r), c(1)))
            with b.if_then(b.icmp_signed("<", e.ld(order, i), e.ld(rmin, r))):
                e.st(rmin, r, e.ld(order, i))
        best_route, best_good = e.var(-1), e.var(0)
        last = e.var(-1)  # the routes in the order of their first entry: each time the next one
        with e.forever() as (route_next, routes_done):
            pick, pick_order = e.var(-1), e.var(1 << 62)
            with e.loop(0, n_routes) as (r, nxt, _):
                skip = b.or_(b.icmp_signed("<", e.ld(rsize, r), c(2)),
                             b.icmp_signed("<=", e.ld(rmin, r), e.get(last)))
                skip = b.or_(skip, b.icmp_signed(">=", e.ld(rmin, r), e.get(pick_order)))
                with b.if_then(skip):
                    b.branch(nxt)
                e.set(pick, r)
                e.set(pick_order, e.ld(rmin, r))
            r = e.get(pick)
            with b.if_then(b.icmp_signed("<", r, c(0))):
                b.branch(routes_done)
            e.set(last, e.get(pick_order))
            with b.if_then(b.icmp_signed("<=", b.sub(e.ld(rsize, r), c(1)), e.get(best_good))):
                b.branch(route_next)
            with b.if_then(b.icmp_signed("==", e.ld(cvalid, r), c(0))):
                ck, cm = refine(r, keep_size)
                good = e.get(keep_size)
                good = b.select(b.icmp_signed(">", good, c(0)), b.sub(good, c(1)), c(0))
                e.st(cgood, r, good)
                with e.loop(0, e.get(keep_size)) as (t, _, _):  # the members, for when it is applied
                    e.st(ckeep, b.add(b.mul(r, n), t), e.ld(keep, t))
                e.st(cck, r, ck)
                e.st(ccm, r, cm)
                e.st(cvalid, r, 1)
            with b.if_then(b.icmp_signed(">", e.ld(cgood, r), e.get(best_good))):
                e.set(best_good, e.ld(cgood, r))
                e.set(best_route, r)
        with b.if_then(b.icmp_signed("<", e.get(best_route), c(0))):
            b.branch(finished)
        # apply the best merge: its cached members
        r = e.get(best_route)
        size = b.add(e.ld(cgood, r), c(1))
        with e.loop(0, size) as (t, _, _):
            e.st(keep, t, e.ld(ckeep, b.add(b.mul(r, n), t)))
        mk, mm = merge_of(keep, size)
        g = gen_of(mm)
        new = e.get(count)
        e.st(key, new, mk)
        e.st(mask, new, mm)
        e.st(rid, new, r)
        e.st(gen, new, g)
        e.st(order, new, b.or_(b.shl(g, c(32)), b.sub(c(seq - 1), e.get(merges))))
        e.st(live, new, 1)
        e.set(merges, b.add(e.get(merges), c(1)))
        e.set(count, b.add(new, c(1)))
        with e.loop(0, size) as (t, _, _):
            e.st(live, e.ld(keep, t), 0)
        with e.loop(0, n) as (a, _, _):  # every owner is live: the members' aliases move to the merge
            with b.if_then(b.icmp_signed("==", e.ld(live, e.ld(aowner, a)), c(0))):
                e.st(aowner, a, new)
        e.set(n_live, b.add(b.sub(e.get(n_live), size), c(1)))
        with e.loop(0, n_routes) as (q, nxt, _):
            stale = b.or_(b.icmp_signed("==", q, r), e.meets(e.ld(cck, q), e.ld(ccm, q), mk, mm))
            with b.if_then(stale):
                e.st(cvalid, q, 0)
    # step 4, then the table in order
    n_out = e.var(0)
    with e.loop(0, e.get(count)) as (i, nxt, _):
        with b.if_then(b.icmp_signed("==", e.ld(live, i), c(0))):
            b.branch(nxt)
        pos = e.var(e.get(n_out))
        oi = e.ld(order, i)
        with e.forever() as (_, placed):
            p = e.get(pos)
            with b.if_then(b.icmp_signed("==", p, c(0))):
                b.branch(placed)
            prev = e.ld(out, b.sub(p, c(1)))
            with b.if_then(b.icmp_signed("<", e.ld(order, prev), oi)):
                b.branch(placed)
            e.st(out, p, prev)
            e.set(pos, b.sub(p, c(1)))
        e.st(out, e.get(pos), i)
        e.set(n_out, b.add(e.get(n_out), c(1)))
    with e.loop(0, e.get(n_out)) as (t, nxt, _):
        i = e.ld(out, t)
        all_default = e.var(1)
        with e.loop(0, n) as (a, anext, _):
            with b.if_then(b.and_(b.icmp_signed("==", e.ld(aowner, a), i), b.icmp_signed("==", e.ld(adef, a), c(0)))):
                e.set(all_default, 0)
        with b.if_then(b.icmp_signed("==", e.get(all_default), c(0))):
            b.branch(nxt)
        with e.loop(0, e.get(n_out)) as (u, unext, _):
            x = e.ld(out, u)
            hit = b.and_(b.icmp_signed("!=", e.ld(live, x), c(0)), b.icmp_signed(">", e.ld(order, x), e.ld(order, i)))
            hit = b.and_(hit, b.icmp_signed("!=", e.ld(rid, x), e.ld(rid, i)))
            hit = b.and_(hit, e.meets(e.ld(key, i), e.ld(mask, i), e.ld(key, x), e.ld(mask, x)))
            with b.if_then(hit):
                b.branch(nxt)
        e.st(live, i, 0)
    kept = e.var(0)
    with e.loop(0, e.get(n_out)) as (t, nxt, _):
        i = e.ld(out, t)
        with b.if_then(b.icmp_signed("==", e.ld(live, i), c(0))):
            b.branch(nxt)
        e.st(out, e.get(kept), i)
        e.set(kept, b.add(e.get(kept), c(1)))
    b.ret(e.get(kept))
    return str(module)


def ordered_covering(keys, masks, rids, flags, width: int, target: int):
    """Ordered Covering as rig has it on a table of disjoint prefixes sorted by generality
    (stably): ``compress._ordered_covering(..., disjoint=True, strict=True,
    defaults_as_members=True)``'s minimisation and step 4 (the reference).  Returns (key,
    mask, route id) rows in table order."""
    n = len(keys)
    n_routes = max(rids) + 1
    sizes = ((2 * n,) * 6 + (n, n) + (n_routes,) * 4 + (2 * n, 2 * n, n, 2 * n, 2 * n) + (n_routes, n_routes)
             + (n_routes * n, 2 * n))
    buf = array("q", bytes(8 * sum(sizes)))
    ubuf = memoryview(buf).cast("B").cast("Q")
    ubuf[:n] = array("Q", keys)
    ubuf[2 * n:3 * n] = array("Q", masks)
    buf[4 * n:5 * n] = array("q", rids)
    buf[12 * n + n:12 * n + 2 * n] = array("q", flags)
    kernel()
    kept = _STATE["oc"](buf.buffer_info()[0], n, width, target, n_routes)
    out_at = sum(sizes) - 2 * n
    rows = buf[out_at:out_at + kept].tolist()
    k, m, r = ubuf[:2 * n].tolist(), ubuf[2 * n:4 * n].tolist(), buf[4 * n:6 * n].tolist()
    return [(k[i], m[i], r[i]) for i in rows]


# ---- the whole of effort="fast" on one table in one call (compress._compress with thorough
# false: the reference), built with the IR builder; it calls the kernels above by address

# the fused kernel's buffer (uint64 words), n entries: key, mask, route, flag (in), then the
# result's key, mask, route (out: see put_rows), then
# the scratch arrays below of n words each, the candidate tables (3 x 2n words each), and the
# kernels' own buffer (:func:`_fused_words`)
_SCRATCH = ("rid", "idx", "tmp", "skey", "vval", "vcnt", "vmap", "rroute", "rcount", "first", "seen", "grp",
            "grids", "order", "sk", "sm", "sr", "sd", "tdf")


def _fused_words(n: int, small: int) -> int:
    """Words of the fused kernel's buffer for a table of ``n`` entries (Ordered Covering on
    tables of at most ``small``)."""
    w = (n + 63) // 64
    kernels = max(32 * n + 2 * n * w, 31 * n + n * n if n <= small else 0)  # ORTC's, Ordered Covering's
    return 7 * n + len(_SCRATCH) * n + 12 * n + kernels + 16


_RUN = 16  # sort_by's insertion-sorted runs


def _sort_function(module: ir.Module) -> ir.Function:
    """``sort_by(idx, keys, tmp, n)``: sorts ``idx[0:n]`` stably by ``keys[idx[i]]`` (unsigned):
    insertion sort of runs of ``_RUN``, then a bottom-up merge sort through ``tmp[0:n]``."""
    ptr = ir.PointerType()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, _I64]), name="sort_by")
    fn.linkage = "internal"
    idx, keys, tmp, n = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    e = _Emitter(b)
    c = e.c

    def smin(x, y):
        return b.select(b.icmp_signed("<", x, y), x, y)

    with e.loop(1, n) as (t, nxt, _):
        e.insert(idx, b.mul(b.udiv(t, c(_RUN)), c(_RUN)), t, e.ld(idx, t), keys)
    run, flip = e.var(_RUN), e.var(0)
    with e.forever() as (_, sorted_):
        with b.if_then(b.icmp_signed(">=", e.get(run), n)):
            b.branch(sorted_)
        flipped = b.icmp_signed("!=", e.get(flip), c(0))
        src, dst = b.select(flipped, tmp, idx), b.select(flipped, idx, tmp)
        lo = e.var(0)
        with e.forever() as (_, runs_done):
            with b.if_then(b.icmp_signed(">=", e.get(lo), n)):
                b.branch(runs_done)
            start, width = e.get(lo), e.get(run)
            mid, hi = smin(b.add(start, width), n), smin(b.add(start, b.add(width, width)), n)
            i, j = e.var(start), e.var(mid)
            with e.loop(start, hi) as (k, _, _):
                iv, jv = e.get(i), e.get(j)
                left_ok, right_ok = b.icmp_signed("<", iv, mid), b.icmp_signed("<", jv, hi)
                xi = e.ld(src, b.select(left_ok, iv, start))
                xj = e.ld(src, b.select(right_ok, jv, start))
                not_after = b.icmp_unsigned("<=", e.ld(keys, xi), e.ld(keys, xj))
                take_left = b.and_(left_ok, b.or_(b.not_(right_ok), not_after))
                e.st(dst, k, b.select(take_left, xi, xj))
                e.set(i, b.add(iv, b.zext(take_left, _I64)))
                e.set(j, b.add(jv, b.zext(b.not_(take_left), _I64)))
            e.set(lo, hi)
        e.set(flip, b.xor(e.get(flip), c(1)))
        e.set(run, b.add(e.get(run), e.get(run)))
    with b.if_then(b.icmp_signed("!=", e.get(flip), c(0))):
        with e.loop(0, n) as (k, _, _):
            e.st(idx, k, e.ld(tmp, k))
    b.ret_void()
    return fn


def _fused_module() -> str:
    """The IR of ``nmc_mc_compress(buf, n, target, small, kernels)``, one table (see :func:`_fused_words`),
    and of ``nmc_mc_compress_batch`` (:func:`_batch_function`), which runs it on each table of a call;
    ``kernels`` points at the addresses of the route groups', ORTC's and Ordered Covering's
    kernels."""
    module = ir.Module(name="compress")
    ptr = ir.PointerType()
    sort_by = _sort_function(module)
    fn = ir.Function(module, ir.FunctionType(_I64, [ptr, _I64, _I64, _I64, ptr]), name="nmc_mc_compress")
    fn.linkage = "internal"
    buf, n, target, small, kernels = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    e = _Emitter(b)
    e.ctpop = ir.Function(module, ir.FunctionType(_I64, [_I64]), name="llvm.ctpop.i64")
    ctlz = ir.Function(module, ir.FunctionType(_I64, [_I64, _I1]), name="llvm.ctlz.i64")
    c = e.c
    ne, eq, lt_, gt_ = (lambda x, y: b.icmp_signed("!=", x, y)), (lambda x, y: b.icmp_signed("==", x, y)), \
        (lambda x, y: b.icmp_signed("<", x, y)), (lambda x, y: b.icmp_signed(">", x, y))

    def region(start, size):
        return e.at(buf, start), b.add(start, size)

    at = c(0)
    arrays = {}
    for name in ("key", "mask", "route", "flag", "okey", "omask", "oroute", *_SCRATCH):
        arrays[name], at = region(at, n)
    n2 = b.add(n, n)
    for name in ("tk", "tm", "tr", "ck", "cm", "cr"):
        arrays[name], at = region(at, n2)
    sub = e.at(buf, at)
    a = arrays
    key, mask, route, flag, rid, idx, tmp, skey = (a[k] for k in ("key", "mask", "route", "flag", "rid", "idx", "tmp",
                                                                   "skey"))
    sk, sm, sr, sd, tk, tm, tr = (a[k] for k in ("sk", "sm", "sr", "sd", "tk", "tm", "tr"))
    ck, cm, cr, tdf = a["ck"], a["cm"], a["cr"], a["tdf"]

    def call_kernel(slot: int, args):
        fnty = ir.FunctionType(_I64, [ptr] + [_I64] * (len(args) - 1))
        address = b.inttoptr(e.ld(kernels, slot), fnty.as_pointer())
        return b.call(address, args)

    def zero(array, words):
        with e.loop(0, words) as (t, _, _):
            e.st(array, t, 0)

    def iota(array, count):
        with e.loop(0, count) as (t, _, _):
            e.st(array, t, t)

    def put_rows(count, source):
        """The result: rows ``source`` (key, mask, route id arrays) as keys, masks and route
        words; returns their count."""
        k_, m_, r_ = source
        with e.loop(0, count) as (t, _, _):
            e.st(a["okey"], t, e.ld(k_, t))
            e.st(a["omask"], t, e.ld(m_, t))
            e.st(a["oroute"], t, e.ld(a["rroute"], e.ld(r_, t)))
        b.ret(count)

    def pass_through(keep_flagged):
        """The input rows in order (the defaultable ones only if ``keep_flagged``)."""
        count = e.var(0)
        with e.loop(0, n) as (i, nxt, _):
            with b.if_then(b.and_(b.not_(keep_flagged), ne(e.ld(flag, i), c(0)))):
                b.branch(nxt)
            t = e.get(count)
            for out, column in (("okey", key), ("omask", mask), ("oroute", route)):
                e.st(a[out], t, e.ld(column, i))
            e.set(count, b.add(t, c(1)))
        b.ret(e.get(count))

    # route ids: distinct routes by decreasing frequency, then value
    n_flags = e.var(0)
    with e.loop(0, n) as (i, _, _):
        e.set(n_flags, b.add(e.get(n_flags), b.zext(ne(e.ld(flag, i), c(0)), _I64)))
    iota(idx, n)
    b.call(sort_by, [idx, route, tmp, n])
    vval, vcnt, vmap = a["vval"], a["vcnt"], a["vmap"]
    n_routes = e.var(0)
    with e.loop(0, n) as (t, _, _):
        i = e.ld(idx, t)
        with b.if_then(b.or_(eq(t, c(0)), b.icmp_unsigned("!=", e.ld(route, i), e.ld(route, e.ld(idx, b.sub(t, c(1))))))):
            e.st(vval, e.get(n_routes), e.ld(route, i))
            e.st(vcnt, e.get(n_routes), 0)
            e.set(n_routes, b.add(e.get(n_routes), c(1)))
        q = b.sub(e.get(n_routes), c(1))
        e.st(vcnt, q, b.add(e.ld(vcnt, q), c(1)))
        e.st(rid, i, q)
    R = e.get(n_routes)
    with b.if_then(b.and_(eq(R, n), eq(e.get(n_flags), c(0)))):
        pass_through(ir.Constant(_I1, 1))  # every entry needs one of its own
    iota(idx, R)
    with e.loop(0, R) as (q, _, _):
        e.st(skey, q, b.sub(n, e.ld(vcnt, q)))
    b.call(sort_by, [idx, skey, tmp, R])
    with e.loop(0, R) as (p, _, _):
        q = e.ld(idx, p)
        e.st(vmap, q, p)
        e.st(a["rroute"], p, e.ld(vval, q))
        e.st(a["rcount"], p, e.ld(vcnt, q))
    with e.loop(0, n) as (i, _, _):
        e.st(rid, i, e.ld(vmap, e.ld(rid, i)))
    # key width; disjoint prefixes, or -1 (the caller runs the general path)
    bits = e.var(0)
    with e.loop(0, n) as (i, _, _):
        e.set(bits, b.or_(e.get(bits), b.or_(e.ld(key, i), e.ld(mask, i))))
    width = b.sub(c(64), b.call(ctlz, [e.get(bits), ir.Constant(_I1, 0)]))
    width = b.select(eq(width, c(0)), c(1), width)
    full = b.lshr(c(-1), b.sub(c(64), width))
    with e.loop(0, n) as (i, _, _):
        free = b.xor(full, e.ld(mask, i))
        with b.if_then(ne(b.and_(free, b.add(free, c(1))), c(0))):
            b.ret(c(-1))
    order = a["order"]
    iota(order, n)
    b.call(sort_by, [order, key, tmp, n])
    with e.loop(1, n) as (t, _, _):
        p, q = e.ld(order, b.sub(t, c(1))), e.ld(order, t)
        with b.if_then(b.icmp_unsigned(">=", b.or_(e.ld(key, p), b.xor(full, e.ld(mask, p))), e.ld(key, q))):
            b.ret(c(-1))
    # the floor: every route of a non-defaultable entry needs an entry
    seen = a["seen"]
    zero(seen, R)
    with e.loop(0, n) as (i, _, _):
        with b.if_then(eq(e.ld(flag, i), c(0))):
            e.st(seen, e.ld(rid, i), 1)
    floor = e.var(0)
    with e.loop(0, R) as (q, _, _):
        e.set(floor, b.add(e.get(floor), e.ld(seen, q)))
    tgt = b.select(lt_(target, e.get(floor)), e.get(floor), target)
    with b.if_then(b.icmp_signed("<=", b.sub(n, e.get(n_flags)), tgt)):
        pass_through(ir.Constant(_I1, 0))
    with e.loop(0, n) as (t, _, _):
        o = e.ld(order, t)
        e.st(sk, t, e.ld(key, o))
        e.st(sm, t, e.ld(mask, o))
        e.st(sr, t, e.ld(rid, o))
        e.st(sd, t, b.zext(ne(e.ld(flag, o), c(0)), _I64))
    grp, grids = a["grp"], a["grids"]
    length = e.var(0)

    def merge_groups(n_groups, split, members):
        """The route groups' kernel on groups ``grids[0:n_groups]``: its result's length and
        where its keys start."""
        words = b.add(b.add(R, b.mul(n_groups, c(3))), b.add(c(1), b.mul(n, c(8))))
        zero(sub, words)
        with e.loop(0, R) as (q, _, _):
            e.st(sub, q, e.ld(grp, q))
        with e.loop(0, n_groups) as (p, _, _):
            e.st(sub, b.add(R, p), e.ld(grids, p))
        table = b.add(b.add(R, b.mul(n_groups, c(3))), b.add(c(1), b.mul(n, c(3))))
        with e.loop(0, n) as (t, _, _):
            e.st(sub, b.add(table, t), e.ld(sk, t))
            e.st(sub, b.add(b.add(table, n), t), e.ld(sm, t))
            e.st(sub, b.add(b.add(table, b.mul(n, c(3))), t), e.ld(sr, t))
            e.st(sub, b.add(b.add(table, b.mul(n, c(4))), t), e.ld(sd, t))
        total = call_kernel(0, [sub, n_groups, R, n, full, c(split), c(members)])
        return total, b.add(R, b.add(b.mul(n_groups, c(2)), c(1)))

    def group_rows(total, lengths_at, n_groups, dest):
        """Copy the route groups' result into ``dest`` (key, mask, route id, flag arrays)."""
        dk, dm, dr, dd = dest
        keys_at = b.add(lengths_at, n_groups)
        row = e.var(0)
        with e.loop(0, n_groups) as (p, _, _):
            with e.loop(0, e.ld(sub, b.add(lengths_at, p))) as (_, _, _):
                t = e.get(row)
                e.st(dk, t, e.ld(sub, b.add(keys_at, t)))
                e.st(dm, t, e.ld(sub, b.add(b.add(keys_at, n), t)))
                e.st(dr, t, e.ld(grids, p))
                if dd is not None:
                    e.st(dd, t, e.ld(sub, b.add(b.add(keys_at, n2), t)))
                e.set(row, b.add(t, c(1)))

    # PACMAN's pair compressor with default-route removal: groups by (count, later first entry)
    first = a["first"]
    with e.loop(0, R) as (q, _, _):
        e.st(first, q, n)
    with e.loop(0, n) as (i, _, _):
        q = e.ld(rid, i)
        with b.if_then(eq(e.ld(first, q), n)):
            e.st(first, q, i)
    iota(grids, R)
    with e.loop(0, R) as (q, _, _):
        e.st(skey, q, b.or_(b.shl(e.ld(a["rcount"], q), c(32)), b.sub(c(0xFFFFFFFF), e.ld(first, q))))
    b.call(sort_by, [grids, skey, tmp, R])
    with e.loop(0, R) as (p, _, _):
        e.st(grp, e.ld(grids, p), p)
    total, lengths_at = merge_groups(R, 0, 1)
    group_rows(total, lengths_at, R, (tk, tm, tr, tdf))
    # a merged entry of defaultable entries only is dropped when no later entry of another route
    # meets it (each row is decided on the rows after it, not yet moved)
    kept = e.var(0)
    with e.loop(0, total) as (t, nxt, _):
        with b.if_then(ne(e.ld(tdf, t), c(0))):
            met = e.var(0)
            kt, mt, rt = e.ld(tk, t), e.ld(tm, t), e.ld(tr, t)
            with e.loop(b.add(t, c(1)), total) as (u, _, scanned):
                with b.if_then(b.and_(ne(e.ld(tr, u), rt), e.meets(kt, mt, e.ld(tk, u), e.ld(tm, u)))):
                    e.set(met, 1)
                    b.branch(scanned)
            with b.if_then(eq(e.get(met), c(0))):
                b.branch(nxt)
        kk = e.get(kept)
        e.st(tk, kk, e.ld(tk, t))
        e.st(tm, kk, e.ld(tm, t))
        e.st(tr, kk, e.ld(tr, t))
        e.set(kept, b.add(kk, c(1)))
    e.set(length, e.get(kept))

    def take(count, source):
        """The candidate ``source`` (key, mask, route id arrays) replaces the table."""
        with e.loop(0, count) as (t, _, _):
            for dst, src in zip((tk, tm, tr), source):
                e.st(dst, t, e.ld(src, t))
        e.set(length, count)

    # the split-first variant: defaultable entries left out, groups by (count, route id)
    with b.if_then(gt_(e.get(length), tgt)):
        cnt = a["vcnt"]  # no longer needed by value: counts of non-defaultable entries by route id
        zero(cnt, R)
        with e.loop(0, n) as (i, nxt, _):
            with b.if_then(ne(e.ld(flag, i), c(0))):
                b.branch(nxt)
            q = e.ld(rid, i)
            e.st(cnt, q, b.add(e.ld(cnt, q), c(1)))
        n_groups = e.var(0)
        with e.loop(0, R) as (q, nxt, _):
            with b.if_then(eq(e.ld(cnt, q), c(0))):
                b.branch(nxt)
            e.st(grids, e.get(n_groups), q)
            e.st(skey, q, b.or_(b.shl(e.ld(cnt, q), c(32)), q))
            e.set(n_groups, b.add(e.get(n_groups), c(1)))
        groups = e.get(n_groups)
        b.call(sort_by, [grids, skey, tmp, groups])
        with e.loop(0, R) as (q, _, _):
            e.st(grp, q, groups)
        with e.loop(0, groups) as (p, _, _):
            e.st(grp, e.ld(grids, p), p)
        total, lengths_at = merge_groups(groups, 1, 0)
        with b.if_then(lt_(total, e.get(length))):
            group_rows(total, lengths_at, groups, (tk, tm, tr, None))
            e.set(length, total)
    # ORTC, and Ordered Covering as rig has it on small tables
    with b.if_then(gt_(e.get(length), tgt)):
        w = b.lshr(b.add(R, c(63)), c(6))
        words = b.add(b.mul(n, c(32)), b.mul(n2, w))
        zero(sub, words)
        with e.loop(0, n) as (t, _, _):
            e.st(sub, t, e.ld(sk, t))
            e.st(sub, b.add(n, t), e.ld(sr, t))
            e.st(sub, b.add(n2, t), e.ld(sd, t))
        placed = call_kernel(1, [sub, n, w, width])
        with b.if_then(lt_(placed, e.get(length))):
            at_placed = b.sub(words, b.mul(n, c(7)))
            iota(idx, placed)
            with e.loop(0, placed) as (j, _, _):
                row = b.add(at_placed, b.mul(j, c(3)))
                depth, lo = e.ld(sub, row), e.ld(sub, b.add(row, c(1)))
                e.st(skey, j, b.or_(b.shl(b.sub(width, depth), c(32)), lo))
            b.call(sort_by, [idx, skey, tmp, placed])
            with e.loop(0, placed) as (t, _, _):
                row = b.add(at_placed, b.mul(e.ld(idx, t), c(3)))
                free_bits = b.sub(width, e.ld(sub, row))
                low = b.select(eq(free_bits, c(0)), c(0), b.lshr(c(-1), b.sub(c(64), free_bits)))
                m = b.xor(full, low)
                e.st(ck, t, b.and_(e.ld(sk, e.ld(sub, b.add(row, c(1)))), m))
                e.st(cm, t, m)
                e.st(cr, t, e.ld(sub, b.add(row, c(2))))
            take(placed, (ck, cm, cr))
        with b.if_then(b.and_(gt_(e.get(length), tgt), b.icmp_signed("<=", n, small))):
            # the table sorted (stably) by generality
            iota(idx, n)
            with e.loop(0, n) as (i, _, _):
                e.st(skey, i, b.sub(width, e.popcount(e.ld(mask, i))))
            b.call(sort_by, [idx, skey, tmp, n])
            words = b.add(b.mul(n, c(25)), b.mul(R, b.add(n, c(6))))
            zero(sub, words)
            with e.loop(0, n) as (t, _, _):
                i = e.ld(idx, t)
                e.st(sub, t, e.ld(key, i))
                e.st(sub, b.add(n2, t), e.ld(mask, i))
                e.st(sub, b.add(b.mul(n, c(4)), t), e.ld(rid, i))
                e.st(sub, b.add(b.mul(n, c(13)), t), b.zext(ne(e.ld(flag, i), c(0)), _I64))
            rows = call_kernel(2, [sub, n, width, tgt, R])
            with b.if_then(lt_(rows, e.get(length))):
                out_at = b.sub(words, n2)
                with e.loop(0, rows) as (t, _, _):
                    i = e.ld(sub, b.add(out_at, t))
                    e.st(ck, t, e.ld(sub, i))
                    e.st(cm, t, e.ld(sub, b.add(n2, i)))
                    e.st(cr, t, e.ld(sub, b.add(b.mul(n, c(4)), i)))
                take(rows, (ck, cm, cr))
    put_rows(e.get(length), (tk, tm, tr))
    _batch_function(module, fn)
    return str(module)


def _batch_function(module: ir.Module, compress_one: ir.Function) -> None:
    """``nmc_mc_compress_batch(start, key, mask, route, flag, n_tables, target, small, room,
    kernels, work, out)``: ``compress_one`` (``nmc_mc_compress``) on each table of the columns
    in turn (``flag`` bytes, the others 64-bit words), in the buffer ``work``, which has room
    for tables of up to ``room`` entries (:func:`_batch_words`), its result moved to the flat
    outputs ``out`` (layout: :func:`compress_batch`).  Returns the longest result's length, -1
    when some table is left to the caller, or ``-2 - n`` (and does nothing) when the largest
    table, of ``n`` entries, does not fit ``work``."""
    ptr = ir.PointerType()
    fn = ir.Function(module, ir.FunctionType(_I64, [ptr] * 5 + [_I64] * 4 + [ptr] * 3),
                     name="nmc_mc_compress_batch")
    start, key, mask, route, flag, n_tables, target, small, room, kernels, work, out = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    e = _Emitter(b)
    c = e.c
    largest = e.var(0)
    with e.loop(0, n_tables) as (t, _, _):
        n = b.sub(e.ld(start, b.add(t, c(1))), e.ld(start, t))
        e.set(largest, b.select(b.icmp_signed(">", n, e.get(largest)), n, e.get(largest)))
    with b.if_then(b.icmp_signed(">", e.get(largest), room)):
        b.ret(b.sub(c(-2), e.get(largest)))
    total = e.ld(start, n_tables)
    ends = out
    status = e.at(out, b.add(n_tables, c(1)))
    at = b.add(n_tables, b.add(n_tables, c(1)))
    columns = [e.at(out, b.add(at, b.mul(total, c(j)))) for j in range(3)]  # key, mask, route
    e.st(ends, 0, 0)
    longest, left = e.var(0), e.var(0)
    with e.loop(0, n_tables) as (t, nxt, _):
        lo = e.ld(start, t)
        n = b.sub(e.ld(start, b.add(t, c(1))), lo)
        to = [e.at(work, b.mul(n, c(j))) for j in range(4)]  # its key, mask, route, flag columns
        with e.loop(0, n) as (i, _, _):
            row = b.add(lo, i)
            for j, column in enumerate((key, mask, route)):
                e.st(to[j], i, e.ld(column, row))
            byte = b.load(b.gep(flag, [row], source_etype=ir.IntType(8), inbounds=True), typ=ir.IntType(8))
            e.st(to[3], i, b.zext(byte, _I64))
        tgt = b.select(b.icmp_signed("<", target, n), target, n)
        count = b.call(compress_one, [work, n, tgt, small, kernels])
        pos = e.ld(ends, t)
        compiled = b.icmp_signed(">=", count, c(0))
        e.st(status, t, b.zext(compiled, _I64))
        with b.if_then(b.not_(compiled)):
            e.st(ends, b.add(t, c(1)), pos)
            e.set(left, 1)
            b.branch(nxt)
        e.set(longest, b.select(b.icmp_signed(">", count, e.get(longest)), count, e.get(longest)))
        for j, column in enumerate(columns):
            source, dest = e.at(work, b.mul(n, c(4 + j))), e.at(column, pos)
            with e.loop(0, count) as (i, _, _):
                e.st(dest, i, e.ld(source, i))
        e.st(ends, b.add(t, c(1)), b.add(pos, count))
    b.ret(b.select(b.icmp_signed("!=", e.get(left), c(0)), c(-1), e.get(longest)))


_LOCAL = threading.local()


def _work(largest: int, small: int) -> tuple[int, int]:
    """This thread's work buffer for the fused kernel with room for tables of ``largest``
    entries (at ``small``): its address, and the largest table it is known to have room for
    (kept between calls, grown by doubling: a fresh one costs more than the kernel on large
    tables; the kernel writes every word it reads, so it is not cleared)."""
    buf, rooms = getattr(_LOCAL, "work", (None, {}))
    room = rooms.get(small, -1)
    if room < largest:
        words = _batch_words(largest, small)
        if buf is None or len(buf) < words:
            buf = array("Q", bytes(8 * max(words, 2 * len(buf or ()), 1 << 12)))
        rooms[small] = room = largest  # a buffer only grows: every room recorded stays true
        _LOCAL.work = (buf, rooms)
    return buf.buffer_info()[0], room


def _batch_words(largest: int, small: int) -> int:
    """Words of the work buffer for tables of at most ``largest`` entries: the most that
    :func:`_fused_words` asks for any of them (it grows with ``n`` on either side of ``small``)."""
    return max(_fused_words(largest, small), _fused_words(min(largest, small), small))


def compress_batch(tables: RouteTables, target: int, small: int) -> tuple[RouteTables, int, np.ndarray]:
    """``compress._compress(..., target, thorough=False)`` on each table of ``tables``, all in
    one call of the fused kernel (``small``: ``compress._SMALL``): the compressed tables (same
    route ids and chips, no flags), the longest one's length (-1 when the kernel left some
    table to the caller) and, per table, whether the kernel did it (nonzero; zero: the table is
    not disjoint prefixes, its result is empty, and the caller runs the reference).

    The kernel reads the columns where they are; its output ``out`` (uint64 words, T tables
    of N entries in all): ``end[T+1]`` (table ``t``'s result is rows ``end[t]`` to
    ``end[t+1]``), ``status[T]`` (0: left to the caller), then the results' ``key[N]``,
    ``mask[N]`` and ``route[N]`` (a table never grows).  Python's work is a few calls per
    batch, none per table or entry."""
    start = tables.start
    n_tables, total = len(start) - 1, int(start[-1])
    fused = _STATE.get("fused")
    if fused is None:
        kernel()
        fused = _STATE["fused"]
    out = np.empty(2 * n_tables + 1 + 3 * total, np.uint64)
    columns = (_address(start, 8), _address(tables.key, 8), _address(tables.mask, 8), _address(tables.route, 8),
               _address(tables.defaultable, 1), n_tables, target, small)
    address, room = _work(0, small)
    while (longest := fused(*columns, room, _STATE["kernels_at"], address, _address(out, 8))) < -1:
        address, room = _work(-2 - longest, small)  # the work buffer grows for the largest table
    at = 2 * n_tables + 1
    count = int(out[n_tables])
    result = RouteTables(out[:n_tables + 1].view(np.int64), out[at:at + count], out[at + total:at + total + count],
                         out[at + 2 * total:at + 2 * total + count].view(np.int64), tables.routes, None, tables.chips)
    return result, longest, out[n_tables + 1:at]


def _address(column: np.ndarray, itemsize: int) -> int:
    """Where a column's data is (``ValueError`` unless contiguous numbers of ``itemsize``
    bytes: 64-bit words, or flags)."""
    if column.itemsize != itemsize or not column.flags.c_contiguous:
        raise ValueError(f"a route table column of {column.dtype} is not contiguous {8 * itemsize}-bit numbers")
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(column))
    except (TypeError, ValueError):  # read-only, or empty
        return column.__array_interface__["data"][0]
