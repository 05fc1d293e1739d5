-- 股东: shareholders, with the credit code (or legacy number) of their enterprise.
SELECT g.gdid, q.tyshxydm AS qy_tyshxydm, g.gdmc, g.gdzjhm, g.rjcze, g.czbl, g.gxsj
FROM qygd g
LEFT JOIN qyjbxx q ON q.qyid = g.qyid
