-- 个人账户: housing provident fund accounts.
SELECT grzh, xingming, zjhm, xingbie, csny, dwmc, dwtyshxydm, khrq, zhzt, yjce, sjhm, gxsj
FROM grzh
