-- 权利人: one row per property certificate and owner.
SELECT ywh, bdcqzh, bdcdyh, qlrmc, zjh, xb, zl, jzmj, djsj, qszt, gxsj
FROM bdc_qlr
