-- 企业代码对照: each legacy 注册号 and the credit code that replaced it (换照).
SELECT dzid, zch, tyshxydm, gxsj
FROM qydmdz
