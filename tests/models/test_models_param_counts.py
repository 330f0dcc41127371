"""Parameter counts of every zoo model against published numbers or hand arithmetic.

Models are built on the meta device (no memory, no init cost); ``parameters()`` are the same objects a
real build has (tests/models/test_models_forward.py checks a real build agrees).

Notation in the comments: a conv with ``i`` inputs, ``o`` outputs, ``k x k`` kernel and ``g`` groups has
``i*o*k*k/g`` weights; a BatchNorm over ``c`` channels has ``2c`` (weight + bias; running stats are
buffers); a Linear ``i -> o`` with bias has ``i*o + o``.
"""

from __future__ import annotations

import pytest
import torch

from micronet_score import models


def count(name: str, **kwargs: object) -> int:
    with torch.device("meta"):
        model = models.build(name, **kwargs)
    return sum(p.numel() for p in model.parameters())


# --- CIFAR ResNets (kuangliu layout) -------------------------------------------------------------------
# Stem conv 3*64*9 = 1,728 + BN 128 = 1,856.  BasicBlock(i -> o) = 9io + 2o + 9oo + 2o (+ shortcut io + 2o).
#   64->64:            36,864 + 128 + 36,864 + 128                       =    73,984
#   64->128 s2:        73,728 + 256 + 147,456 + 256 + (8,192 + 256)      =   230,144
#   128->128:          147,456*2 + 512                                    =   295,424
#   128->256 s2:       294,912 + 512 + 589,824 + 512 + (32,768 + 512)     =   919,040
#   256->256:          589,824*2 + 1,024                                  = 1,180,672
#   256->512 s2:       1,179,648 + 1,024 + 2,359,296 + 1,024 + (131,072 + 1,024) = 3,673,088
#   512->512:          2,359,296*2 + 2,048                                = 4,720,640
# Linear 512*10 + 10 = 5,130.


def test_resnet18_cifar_matches_published_count() -> None:
    # Published (kuangliu ResNet18, CIFAR-10): 11,173,962. By hand, stages [2,2,2,2]:
    #   1,856 + 2*73,984 + (230,144 + 295,424) + (919,040 + 1,180,672) + (3,673,088 + 4,720,640) + 5,130
    #   = 1,856 + 147,968 + 525,568 + 2,099,712 + 8,393,728 + 5,130 = 11,173,962
    assert count("resnet18-cifar") == 11_173_962


def test_resnet34_cifar_matches_published_count() -> None:
    # Stages [3,4,6,3]: 1,856 + 3*73,984 + (230,144 + 3*295,424) + (919,040 + 5*1,180,672)
    #   + (3,673,088 + 2*4,720,640) + 5,130
    #   = 1,856 + 221,952 + 1,116,416 + 6,822,400 + 13,114,368 + 5,130 = 21,282,122 (agrees with the brief)
    assert count("resnet34-cifar") == 21_282_122


def test_resnet50_cifar_matches_published_count() -> None:
    # Bottleneck(i, p) = ip + 2p + 9pp + 2p + p*4p + 8p (+ shortcut i*4p + 8p when i != 4p or stride 2).
    #   stage 1 (p=64):  first (i=64, shortcut 16,896): 4,096+128+36,864+128+16,384+512+16,896 = 75,008
    #                    rest (i=256): 16,384+128+36,864+128+16,384+512 = 70,400;  75,008 + 2*70,400 = 215,808
    #   stage 2 (p=128): first (i=256): 32,768+256+147,456+256+65,536+1,024+132,096 = 379,392
    #                    rest (i=512): 65,536+256+147,456+256+65,536+1,024 = 280,064; +3x -> 1,219,584
    #   stage 3 (p=256): first (i=512): 131,072+512+589,824+512+262,144+2,048+526,336 = 1,512,448
    #                    rest (i=1024): 262,144+512+589,824+512+262,144+2,048 = 1,117,184; +5x -> 7,098,368
    #   stage 4 (p=512): first (i=1024): 524,288+1,024+2,359,296+1,024+1,048,576+4,096+2,101,248 = 6,039,552
    #                    rest (i=2048): 1,048,576+1,024+2,359,296+1,024+1,048,576+4,096 = 4,462,592
    #                    -> 6,039,552 + 2*4,462,592 = 14,964,736
    #   stem 1,856 + 215,808 + 1,219,584 + 7,098,368 + 14,964,736 + Linear 2048*10+10 = 20,490
    #   = 23,520,842 (agrees with the brief)
    assert count("resnet50-cifar") == 23_520_842


def test_preact_resnet18_cifar_matches_published_count() -> None:
    # kuangliu PreActResNet18: bare stem conv 1,728 (no BN), no final BN, shortcuts are 1x1 convs without BN.
    # PreActBlock(i -> o) = 2i + 9io + 2o + 9oo (+ io shortcut).
    #   64->64: 73,984 (x2 = 147,968)
    #   64->128: 128 + 73,728 + 256 + 147,456 + 8,192 = 229,760;      + 295,424 = 525,184
    #   128->256: 256 + 294,912 + 512 + 589,824 + 32,768 = 918,272;   + 1,180,672 = 2,098,944
    #   256->512: 512 + 1,179,648 + 1,024 + 2,359,296 + 131,072 = 3,671,552; + 4,720,640 = 8,392,192
    #   1,728 + 147,968 + 525,184 + 2,098,944 + 8,392,192 + 5,130 = 11,171,146 (agrees with the brief)
    assert count("preact-resnet18-cifar") == 11_171_146


def test_resnet_width_option_shrinks_the_model() -> None:
    # width=16: stages 16/32/64/128. Every conv but the stem has both channel counts /4, so (1/16) of its
    # ResNet-18 weights; the stem (3 inputs fixed) has 1/4. BN channels of ResNet-18: stem 64; stage1 4*64;
    # stage2 4*128 + 128 (shortcut); stage3 4*256 + 256; stage4 4*512 + 512 -> 4,800 channels = 9,600 params.
    # Conv weights = 11,173,962 - 9,600 - Linear 5,130 = 11,159,232, of which the stem 1,728.
    # width 16: (11,159,232 - 1,728)/16 = 697,344 + stem 432 + BN 9,600/4 = 2,400 + Linear 128*10+10 = 1,290
    # = 701,466.
    assert count("resnet18-cifar", width=16) == 701_466


# --- DenseNets (kuangliu layout) -----------------------------------------------------------------------
# Dense layer with c inputs, growth k: BN 2c + conv1x1 c*4k + BN 8k + conv3x3 4k*k*9.
# A block of n layers starting at c0 channels has sum(c) = n*c0 + k*n(n-1)/2.
# Transition with c inputs: BN 2c + conv1x1 c*floor(c/2).


def test_densenet121_cifar_matches_published_count() -> None:
    # Published (kuangliu DenseNet121, CIFAR-10): 6,956,298. k=32: layer = 130c + 256 + 36,864 = 130c + 37,120.
    #   stem 3*64*9 = 1,728
    #   block1 c0=64 n=6:   sum c = 384 + 32*15 = 864;     130*864 + 6*37,120 = 335,040; out 256
    #   trans1 512 + 256*128 = 33,280; out 128
    #   block2 c0=128 n=12: sum c = 1,536 + 32*66 = 3,648; 474,240 + 445,440 = 919,680; out 512
    #   trans2 1,024 + 512*256 = 132,096; out 256
    #   block3 c0=256 n=24: sum c = 6,144 + 32*276 = 14,976; 1,946,880 + 890,880 = 2,837,760; out 1,024
    #   trans3 2,048 + 1,024*512 = 526,336; out 512
    #   block4 c0=512 n=16: sum c = 8,192 + 32*120 = 12,032; 1,564,160 + 593,920 = 2,158,080; out 1,024
    #   final BN 2,048; Linear 1,024*10 + 10 = 10,250
    #   total 1,728 + 335,040 + 33,280 + 919,680 + 132,096 + 2,837,760 + 526,336 + 2,158,080 + 2,048 + 10,250
    #   = 6,956,298
    assert count("densenet121-cifar") == 6_956_298


def test_densenet_cifar_default_count() -> None:
    # kuangliu densenet_cifar(): k=12, blocks 6/12/24/16. Layer = 2c + 48c + 96 + 5,184 = 50c + 5,280.
    #   stem 3*24*9 = 648
    #   block1 c0=24 n=6:   sum c = 144 + 180 = 324;      16,200 + 31,680 = 47,880; out 96
    #   trans1 192 + 96*48 = 4,800; out 48
    #   block2 c0=48 n=12:  sum c = 576 + 792 = 1,368;    68,400 + 63,360 = 131,760; out 192
    #   trans2 384 + 192*96 = 18,816; out 96
    #   block3 c0=96 n=24:  sum c = 2,304 + 3,312 = 5,616; 280,800 + 126,720 = 407,520; out 384
    #   trans3 768 + 384*192 = 74,496; out 192
    #   block4 c0=192 n=16: sum c = 3,072 + 1,440 = 4,512; 225,600 + 84,480 = 310,080; out 384
    #   final BN 768; Linear 3,850
    #   total 648 + 47,880 + 4,800 + 131,760 + 18,816 + 407,520 + 74,496 + 310,080 + 768 + 3,850 = 1,000,618
    assert count("densenet-cifar") == 1_000_618


def test_densenet_bc_100_k12_count() -> None:
    # Huang et al. 2017, Table 2: DenseNet-BC (L=100, k=12) has "0.8M" parameters. Exactly, by hand:
    # three blocks of 16 layers (layer = 50c + 5,280 as above), stem 2k = 24 channels.
    #   stem 648
    #   block1 c0=24:  sum c = 384 + 12*120 = 1,824;  91,200 + 84,480 = 175,680; out 216
    #   trans1 432 + 216*108 = 23,760; out 108
    #   block2 c0=108: sum c = 1,728 + 1,440 = 3,168; 158,400 + 84,480 = 242,880; out 300
    #   trans2 600 + 300*150 = 45,600; out 150
    #   block3 c0=150: sum c = 2,400 + 1,440 = 3,840; 192,000 + 84,480 = 276,480; out 342
    #   final BN 684; Linear 342*10 + 10 = 3,430
    #   total 648 + 175,680 + 23,760 + 242,880 + 45,600 + 276,480 + 684 + 3,430 = 769,162
    n = count("densenet-bc-100-k12-cifar")
    assert n == 769_162
    assert round(n / 1e6, 1) == 0.8  # the paper's rounded figure


def test_densenet_seed_count() -> None:
    # Growth k=6, blocks 6/12/24/16, groups stem 3, bottleneck 1, 3x3 2, transition 3.
    # Layer with c inputs: BN 2c + 1x1 c*24 + BN 48 + 3x3 24*6*9/2 = 648  ->  26c + 696.
    #   stem 3*12*9/3 = 108
    #   block1 c0=12 n=6:   sum c = 72 + 6*15 = 162;     4,212 + 4,176 = 8,388; out 48
    #   trans1 96 + 48*24/3 = 480; out 24
    #   block2 c0=24 n=12:  sum c = 288 + 6*66 = 684;    17,784 + 8,352 = 26,136; out 96
    #   trans2 192 + 96*48/3 = 1,728; out 48
    #   block3 c0=48 n=24:  sum c = 1,152 + 6*276 = 2,808; 73,008 + 16,704 = 89,712; out 192
    #   trans3 384 + 192*96/3 = 6,528; out 96
    #   block4 c0=96 n=16:  sum c = 1,536 + 6*120 = 2,256; 58,656 + 11,136 = 69,792; out 192
    #   final BN 384; Linear 192*10 + 10 = 1,930
    #   total 108 + 8,388 + 480 + 26,136 + 1,728 + 89,712 + 6,528 + 69,792 + 384 + 1,930 = 205,186
    # (k must be a multiple of 6 for the groups to divide; k=6 is the smallest and closest to ~112k.)
    assert count("densenet-seed") == 205_186


def test_densenet_seed_is_the_grouped_densenet_cifar() -> None:
    groups = {"stem": 3, "conv3x3": 2, "transition": 3}
    assert count("densenet-cifar", growth_rate=6, groups=groups) == 205_186


# --- Wide ResNets ---------------------------------------------------------------------------------------
# Pre-act block(i -> o) = 2i + 9io + 2o + 9oo (+ io 1x1 shortcut when i != o). WRN-28-10: 4 blocks/group.
#   stem 3*16*9 = 432
#   group1: 16->160: 32 + 23,040 + 320 + 230,400 + 2,560 = 256,352; 160->160: 461,440 (x3 = 1,384,320)
#           -> 1,640,672
#   group2: 160->320: 320 + 460,800 + 640 + 921,600 + 51,200 = 1,434,560; 320->320: 1,844,480 (x3 = 5,533,440)
#           -> 6,968,000
#   group3: 320->640: 640 + 1,843,200 + 1,280 + 3,686,400 + 204,800 = 5,736,320;
#           640->640: 1,280 + 3,686,400 + 1,280 + 3,686,400 = 7,375,360 (x3 = 22,126,080) -> 27,862,400
#   final BN 1,280; Linear 640*C + C
#   C=10:  432 + 1,640,672 + 6,968,000 + 27,862,400 + 1,280 + 6,410 = 36,479,194


def test_wrn_28_10_matches_published_count() -> None:
    # Published (xternalz/WideResNet-pytorch, WRN-28-10, CIFAR-10): 36,479,194; hand total above agrees.
    assert count("wrn-28-10") == 36_479_194
    assert count("wrn", depth=28, width=10) == 36_479_194


def test_wrn_28_10_hundred_classes() -> None:
    # Only the Linear changes: 36,479,194 - 6,410 + (640*100 + 100 = 64,100) = 36,536,884.
    assert count("wrn-28-10", num_classes=100) == 36_536_884


def test_wrn_16_4_count() -> None:
    # WRN-16-4: 2 blocks/group, widths 64/128/256. stem 432.
    #   group1: 16->64: 32 + 9,216 + 128 + 36,864 + 1,024 = 47,264; 64->64: 128+36,864+128+36,864 = 73,984
    #   group2: 64->128: 128 + 73,728 + 256 + 147,456 + 8,192 = 229,760; 128->128: 295,424
    #   group3: 128->256: 256 + 294,912 + 512 + 589,824 + 32,768 = 918,272; 256->256: 1,180,672
    #   final BN 512; Linear 2,570
    #   432 + 121,248 + 525,184 + 2,098,944 + 512 + 2,570 = 2,748,890 (paper Table 1 reports 2.7M)
    assert count("wrn", depth=16, width=4) == 2_748_890


# --- MobileNetV2 ----------------------------------------------------------------------------------------
# Inverted residual (i -> o, expansion t, hidden h = t*i): [t != 1: ih + 2h] + 9h + 2h + ho + 2o.


def test_mobilenetv2_matches_published_count() -> None:
    # Published (torchvision mobilenet_v2, 1000 classes): 3,504,872. By hand, width 1.0:
    #   stem 3*32*9 + 64 = 928
    #   (1,16):   h=32:  288 + 64 + 512 + 32 = 896
    #   (6,24)x2: 16->24 h=96: 1,536+192+864+192+2,304+48 = 5,136; 24->24 h=144: 3,456+288+1,296+288+3,456+48 = 8,832
    #   (6,32)x3: 24->32 h=144: 10,000; 32->32 h=192: 6,144+384+1,728+384+6,144+64 = 14,848 (x2)
    #   (6,64)x4: 32->64 h=192: 21,056; 64->64 h=384: 24,576+768+3,456+768+24,576+128 = 54,272 (x3)
    #   (6,96)x3: 64->96 h=384: 66,624; 96->96 h=576: 55,296+1,152+5,184+1,152+55,296+192 = 118,272 (x2)
    #   (6,160)x3: 96->160 h=576: 155,264; 160->160 h=960: 153,600+1,920+8,640+1,920+153,600+320 = 320,000 (x2)
    #   (6,320):  160->320 h=960: 153,600+1,920+8,640+1,920+307,200+640 = 473,920
    #   head conv 320*1280 + 2,560 = 412,160; Linear 1,281,000
    #   928 + 896 + 5,136 + 8,832 + 10,000 + 29,696 + 21,056 + 162,816 + 66,624 + 236,544 + 155,264
    #   + 640,000 + 473,920 + 412,160 + 1,281,000 = 3,504,872
    assert count("mobilenetv2") == 3_504_872


def test_mobilenetv2_width_1_4_count() -> None:
    # Width 1.4, make_divisible(., 8): 32->48, 16->24, 24->32 (33.6: int(37.6)//8*8 = 32 >= 0.9*33.6),
    # 32->48, 64->88 (89.6 -> 93//8*8 = 88), 96->136, 160->224, 320->448, last 1280*1.4 = 1792.
    #   stem 3*48*9 + 96 = 1,392
    #   (1,24):   h=48:  432 + 96 + 1,152 + 48 = 1,728
    #   (6,32)x2: 24->32 h=144: 10,000; 32->32 h=192: 14,848
    #   (6,48)x3: 32->48 h=192: 6,144+384+1,728+384+9,216+96 = 17,952;
    #             48->48 h=288: 13,824+576+2,592+576+13,824+96 = 31,488 (x2 = 62,976)
    #   (6,88)x4: 48->88 h=288: 13,824+576+2,592+576+25,344+176 = 43,088;
    #             88->88 h=528: 46,464+1,056+4,752+1,056+46,464+176 = 99,968 (x3 = 299,904)
    #   (6,136)x3: 88->136 h=528: 46,464+1,056+4,752+1,056+71,808+272 = 125,408;
    #             136->136 h=816: 110,976+1,632+7,344+1,632+110,976+272 = 232,832 (x2 = 465,664)
    #   (6,224)x3: 136->224 h=816: 110,976+1,632+7,344+1,632+182,784+448 = 304,816;
    #             224->224 h=1344: 301,056+2,688+12,096+2,688+301,056+448 = 620,032 (x2 = 1,240,064)
    #   (6,448):  224->448 h=1344: 301,056+2,688+12,096+2,688+602,112+896 = 921,536
    #   head 448*1792 + 3,584 = 806,400; Linear 1792*1000 + 1000 = 1,793,000
    #   1,392 + 1,728 + 10,000 + 14,848 + 17,952 + 62,976 + 43,088 + 299,904 + 125,408 + 465,664
    #   + 304,816 + 1,240,064 + 921,536 + 806,400 + 1,793,000 = 6,108,776 (agrees with the brief)
    assert count("mobilenetv2", width=1.4) == 6_108_776
    assert count("mobilenetv2-1.4") == 6_108_776


# --- EfficientNet-B0 ------------------------------------------------------------------------------------
def test_efficientnet_b0_matches_published_count() -> None:
    # Published (Tan & Le 2019 / torchvision efficientnet_b0): 5,288,548. MBConv(i -> o, t, k), e = t*i,
    # s = max(1, i//4): [t != 1: ie + 2e] + k*k*e + 2e + SE(es + s + se + e) + eo + 2o.
    #   stem 864 + 64 = 928
    #   s1 32->16 t1 k3 (e32 s8):   288+64 + 552 + 544 = 1,448
    #   s2 16->24 (e96 s4): 1,728 + 1,056 + 868 + 2,352 = 6,004; 24->24 (e144 s6): 3,744+1,584+1,878+3,504
    #      = 10,710 -> 16,714
    #   s3 24->40 k5 (e144): 3,744 + 3,888 + 1,878 + 5,840 = 15,350; 40->40 (e240 s10): 10,080 + 6,480
    #      + 5,050 + 9,680 = 31,290 -> 46,640
    #   s4 40->80 k3 (e240): 10,080 + 2,640 + 5,050 + 19,360 = 37,130; 80->80 (e480 s20): 39,360 + 5,280
    #      + 19,700 + 38,560 = 102,900 (x2) -> 242,930
    #   s5 80->112 k5 (e480): 39,360 + 12,960 + 19,700 + 53,984 = 126,004; 112->112 (e672 s28): 76,608
    #      + 18,144 + 38,332 + 75,488 = 208,572 (x2) -> 543,148
    #   s6 112->192 k5 (e672): 76,608 + 18,144 + 38,332 + 129,408 = 262,492; 192->192 (e1152 s48): 223,488
    #      + 31,104 + 111,792 + 221,568 = 587,952 (x3) -> 2,026,348
    #   s7 192->320 k3 (e1152): 223,488 + 12,672 + 111,792 + 369,280 = 717,232
    #   head 320*1280 + 2,560 = 412,160; Linear 1,281,000
    #   928 + 1,448 + 16,714 + 46,640 + 242,930 + 543,148 + 2,026,348 + 717,232 + 412,160 + 1,281,000
    #   = 5,288,548
    assert count("efficientnet-b0") == 5_288_548


@pytest.mark.parametrize(
    ("name", "classes", "feature_dim"),
    [
        ("resnet18-cifar", 100, 512),
        ("resnet50-cifar", 100, 2048),
        ("densenet121-cifar", 100, 1024),
        ("mobilenetv2", 10, 1280),
        ("efficientnet-b0", 10, 1280),
    ],
)
def test_num_classes_only_changes_the_classifier(name: str, classes: int, feature_dim: int) -> None:
    default = models.spec(name).default_kwargs["num_classes"]
    delta = (feature_dim + 1) * (classes - default)
    assert count(name, num_classes=classes) == count(name) + delta
