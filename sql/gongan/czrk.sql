-- 常住人口: residents of the household register.
SELECT rkbh, gmsfhm, xm, xb, mz, csrq, hjdz, lxdh, gxsj
FROM czrk
