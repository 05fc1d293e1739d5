-- 婚姻登记: marriage and divorce registrations.
SELECT djxh, ywlx, nfxm, nfsfzh, nvfxm, nvfsfzh, djrq, djjg, gxsj
FROM hydj
