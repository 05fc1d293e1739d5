-- 企业基本信息: enterprises with their legal representative.
SELECT qyid, tyshxydm, qymc, qylx, fddbr, fddbr_sfzh, zczb, clrq, djzt, zs, gxsj
FROM qyjbxx
